"""The experiments' whole train steps, found by name, timed alone or data-parallel.

Every experiment package that exposes `synthetic_train_step(batch, length, variant=..., **overrides)`
(an `rnn_jax.train.SyntheticStep`: its own loss and optimizer on a synthetic batch) can be timed here.
An entry names it as `experiment` (its default variant) or `experiment/variant`:

  step = synthetic_step("language_modeling/zaremba_medium", batch=32, length=64)
  timer = step_timer(step)                     # a timing.Timer running train_step, threading the state
  rows = run_train_steps(["translation", "handwriting/generation"], batch=32, length=64)
  rows = run_data_parallel("language_modeling", per_device_batch=16, length=64)   # 1, 2, 4, ... devices
  rows = run_train_steps(["language_modeling/shakespeare_char"], 32, 64, compare=["torch"])  # beside PyTorch

A step that carries a `decode` (an `rnn_jax.train.SyntheticDecode`, e.g. the handwriting recogniser's beam
search over a test split's worth of batches) gets a second row, mode "decode", timed right after it. An
experiment that also exposes `torch_train_step(batch, length, variant=...) -> step()` (a PyTorch step of the
same model, e.g. the language model's reference) can be timed beside it, alternating rounds in one process.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import time
from typing import Callable, Sequence

import jax

import experiments
from experiments.benchmark import environment, report, timing
from experiments.benchmark.flops import jaxpr_matmul_flops
from rnn_jax import train


def experiment_names() -> list[str]:
  """The experiment packages (folders of `experiments/`) that define `synthetic_train_step`."""
  return [name for name in _packages() if hasattr(importlib.import_module(f"experiments.{name}"),
                                                   "synthetic_train_step")]


def _packages() -> list[str]:
  return sorted(m.name for m in pkgutil.iter_modules(experiments.__path__) if m.ispkg)


def check_entries(entries: Sequence[str]) -> None:
  """ValueError naming the first entry whose experiment has no `synthetic_train_step`, and the known ones."""
  for entry in entries:
    _builder(entry.partition("/")[0])


def _builder(experiment: str) -> Callable[..., train.SyntheticStep]:
  module = importlib.import_module(f"experiments.{experiment}") if experiment in _packages() else None
  builder = getattr(module, "synthetic_train_step", None)
  if builder is None:
    raise ValueError(f"no experiment {experiment!r} with a synthetic_train_step; known: "
                     f"{', '.join(experiment_names())} (an entry is experiment or experiment/variant)")
  return builder


def synthetic_step(entry: str, batch: int, length: int, **overrides) -> train.SyntheticStep:
  """The experiment's train step for `entry` (`experiment` or `experiment/variant`) at this shape;
  `overrides` go to its `synthetic_train_step` (e.g. `hidden_size=8`)."""
  experiment, _, variant = entry.partition("/")
  return _builder(experiment)(batch, length, **({"variant": variant} if variant else {}), **overrides)


def torch_timer(entry: str, batch: int, length: int, name: str) -> timing.Timer:
  """A Timer `torch <name>` for the experiment's PyTorch step of `entry` (its `torch_train_step`); the first call
  (oneDNN primitives, allocations) is reported as the compile time. ValueError if it has none."""
  experiment, _, variant = entry.partition("/")
  _builder(experiment)  # a known experiment
  builder = getattr(importlib.import_module(f"experiments.{experiment}"), "torch_train_step", None)
  if builder is None:
    raise ValueError(f"--compare=torch: experiment {experiment!r} has no torch_train_step (PyTorch counterpart)")
  step = builder(batch, length, **({"variant": variant} if variant else {}))
  start = time.perf_counter()
  step()
  timer = timing.Timer(f"torch {name}", step, extra={"description": "PyTorch reference, CPU"})
  timer.compile_s = time.perf_counter() - start
  return timer


def step_timer(step: train.SyntheticStep, num_devices: int | None = None) -> timing.Timer:
  """A Timer running `step`'s `rnn_jax.train.train_step` repeatedly, threading the state through.

  With `num_devices` the batch is split over that many local devices and the state replicated
  (`rnn_jax.train.data_parallel`), so the same step runs data-parallel.
  """
  step_fn = functools.partial(train.train_step, step.loss_fn)
  rng = jax.random.PRNGKey(0)
  flops = jaxpr_matmul_flops(step_fn, step.state, step.batch, rng)
  shard_batch, replicate = train.data_parallel(num_devices)
  holder = {"state": replicate(step.state)}
  batch = shard_batch(step.batch)

  def run_once():
    holder["state"], metrics = holder["compiled"](holder["state"], batch, rng)
    jax.block_until_ready((holder["state"], metrics))

  timer = timing.Timer(step.name, run_once, flops=flops, extra={"description": step.description})
  timer.optimizer_steps = lambda: holder["state"].step  # updates applied so far

  def compile_fn():
    # The state keeps its (replicated) placement: carried model state (e.g. TBPTT carries)
    # would otherwise come back split over the batch and no longer fit the compiled step.
    state_shardings = jax.tree.map(lambda x: x.sharding, holder["state"])
    replicated = jax.tree.leaves(state_shardings)[0]
    compiled = jax.jit(step_fn, out_shardings=(state_shardings, replicated)).lower(
        holder["state"], batch, rng).compile()
    holder["compiled"] = compiled
    memory = compiled.memory_analysis()
    if memory is not None:
      timer.extra["temp_bytes"] = memory.temp_size_in_bytes

  timer.compile_fn = compile_fn
  return timer


def run_train_steps(entries: Sequence[str], batch: int, length: int, rounds: int = 5, warmup: int = 1,
                    min_round_s: float = 0.2, compile_rounds: int = 1, peak_flops: float = 0.0,
                    ceiling_size: int = 2048, on_rows: Callable[[list[dict]], None] = lambda rows: None,
                    compare: Sequence[str] = (), **fields) -> list[dict]:
  """Times the whole train step of each entry; `on_rows` receives each entry's rows as soon as they are measured.
  With `compare=["torch"]` each entry's PyTorch step (`torch_timer`) is timed beside it in alternating rounds, and
  both rows get `speedup_of_rnn_jax` (median time / rnn_jax's).

  Every step is built before any is timed, so a bad entry or variant stops the run before the timing.
  """
  unknown = set(compare) - {"torch"}
  if unknown:
    raise ValueError(f"--compare with --train_steps takes only torch, got {', '.join(sorted(unknown))}")
  steps = [synthetic_step(entry, batch, length) for entry in entries]
  references = [[torch_timer(entry, batch, length, step.name)] if compare else []
                for entry, step in zip(entries, steps)]
  env = environment.environment()
  ceiling = peak_flops if peak_flops > 0 else timing.matmul_ceiling("float32", ceiling_size)
  rows = []
  for step, reference in zip(steps, references):
    timers = [step_timer(step), *reference]
    results = timing.measure(timers, rounds=rounds, warmup=warmup, min_round_s=min_round_s,
                             compile_rounds=compile_rounds)
    own, *others = [report.make_row(None, timer, result, ceiling, env, mode="train_step", batch=batch,
                                    length=length, tokens=step.tokens, **fields)
                    for timer, result in zip(timers, results)]
    if others:
      for row in (own, *others):
        row["speedup_of_rnn_jax"] = row["median_s"] / own["median_s"]
    point = [own, *others]
    if step.decode is not None:
      point.append(decode_row(step, own, env, rounds=rounds, warmup=warmup, min_round_s=min_round_s,
                              batch=batch, length=length, **fields))
    rows += point
    on_rows(point)
  return rows


def decode_row(step: train.SyntheticStep, step_row: dict, env: dict, rounds: int = 5, warmup: int = 1,
               min_round_s: float = 0.2, **fields) -> dict:
  """The row of `step.decode` (mode "decode"), timed after its train step's `step_row`, with
  `train_steps_per_decode` (its time in train steps) and `share_of_training` (in the variant's whole run)."""
  decode = step.decode
  timer = timing.Timer(f"{step.name} decode", decode.run, extra={"description": decode.description})
  result = timing.measure([timer], rounds=rounds, warmup=warmup, min_round_s=min_round_s)[0]
  row = report.make_row(None, timer, result, None, env, mode="decode", sequences=decode.sequences, **fields)
  row["train_steps_per_decode"] = row["median_s"] / step_row["median_s"]
  row["share_of_training"] = row["train_steps_per_decode"] / decode.train_steps
  return row


def run_data_parallel(entry: str, per_device_batch: int, length: int, rounds: int = 5, warmup: int = 1,
                      min_round_s: float = 0.2, compile_rounds: int = 1, **fields) -> list[dict]:
  """The train step of `entry` on 1, 2, 4, ... local devices at a fixed per-device batch (weak scaling).

  Reports `tokens_per_s_per_device` and `scaling_efficiency` (per-device throughput
  relative to one device). On CPU the devices come from
  `jax.config.update("jax_num_cpu_devices", n)` (main.py's --devices) and share the
  host's cores, so the efficiency there measures overhead, not added compute.
  """
  check_entries([entry])
  env = environment.environment()
  counts = sorted({1, *[2 ** k for k in range(1, 8) if 2 ** k <= jax.device_count()], jax.device_count()})
  rows = []
  for n in counts:
    step = synthetic_step(entry, per_device_batch * n, length)
    timer = step_timer(step, num_devices=n)
    result = timing.measure([timer], rounds=rounds, warmup=warmup, min_round_s=min_round_s,
                            compile_rounds=compile_rounds)[0]
    row = report.make_row(None, timer, result, None, env, mode="data_parallel", batch=per_device_batch * n,
                          length=length, tokens=step.tokens, devices=n, **fields)
    row["tokens_per_s_per_device"] = row["tokens_per_s"] / n
    rows.append(row)
  for row in rows:
    row["scaling_efficiency"] = row["tokens_per_s_per_device"] / rows[0]["tokens_per_s_per_device"]
  return rows
