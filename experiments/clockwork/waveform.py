"""The clockwork experiment: the target waveform, one run as a Task for the generic train loop, the sweep.

Each network reads zeros for `data.length` steps and must emit the target waveform through a linear readout
(experiments/clockwork/model.py); it is trained on that one sequence (full batch) and scored by its NMSE. The
sweep trains every model with every learning rate and seed, each run in its own sub-workdir
`<workdir>/<model>/lr<rate>_seed<seed>`, and reports each model's best rate by mean NMSE over the seeds.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import train
from rnn_jax.train import loop
from rnn_jax.train import workdir as workdir_lib
from experiments import command_line
from experiments.clockwork import model, plots


def target_waveform(length: int, seed: int = 0) -> np.ndarray:
  """`[length]` in [-1, 1]: four sinusoids (periods 6 to `length / 2` steps) under a slow envelope."""
  rng = np.random.RandomState(seed)
  t = np.arange(length)
  periods = np.exp(rng.uniform(np.log(6.0), np.log(length / 2.0), size=4))
  amplitudes = rng.uniform(0.3, 1.0, size=4)
  phases = rng.uniform(0.0, 2.0 * np.pi, size=4)
  wave = np.sum(amplitudes[:, None] * np.sin(2.0 * np.pi * t[None, :] / periods[:, None] + phases[:, None]), 0)
  wave = wave * (0.6 + 0.4 * np.sin(np.pi * t / length))
  wave = wave - wave.mean()
  return (wave / np.max(np.abs(wave))).astype(np.float32)


def validate(config) -> None:
  """Fails at start, naming the field, on values the experiment cannot use."""
  if config.data.length < 2:
    raise ValueError(f"config.data.length must be at least 2, got {config.data.length}")
  for field in ("models", "learning_rates", "seeds"):
    if not config.sweep[field]:
      raise ValueError(f"config.sweep.{field} needs at least one value")
  unknown = [m for m in config.sweep.models if m not in model.MODELS]
  if unknown:
    raise ValueError(f"config.sweep.models: unknown {unknown}; choose from {list(model.MODELS)}")
  if min(config.sweep.learning_rates) <= 0:
    raise ValueError(f"config.sweep.learning_rates must be > 0, got {tuple(config.sweep.learning_rates)}")
  for name in model.MODELS:
    if config.model.hidden_sizes[name] <= 0:
      raise ValueError(f"config.model.hidden_sizes.{name} must be > 0, got {config.model.hidden_sizes[name]}")
  if config.model.hidden_sizes.clockwork % len(config.model.periods):
    raise ValueError(f"config.model.hidden_sizes.clockwork ({config.model.hidden_sizes.clockwork}) must be a "
                     f"multiple of the {len(config.model.periods)} config.model.periods")
  loop.validate_config(config)


def point_config(config, model_name: str, learning_rate: float, seed: int):
  """The config of one run of the sweep."""
  point = config.copy_and_resolve_references()
  point.model.cell, point.optimizer.learning_rate, point.seed = model_name, float(learning_rate), int(seed)
  return point


def point_workdir(workdir: str, model_name: str, learning_rate: float, seed: int) -> str:
  return os.path.join(workdir, model_name, f"lr{learning_rate:g}_seed{seed}")


def make_task(config) -> train.Task:
  """Fitting `config.model.cell` to the target waveform: the batch is the one target sequence."""
  cell = model.make_cell(config.model.cell, config.model.periods)
  hidden_size = config.model.hidden_sizes[config.model.cell]
  target_1xT = jnp.asarray(target_waveform(config.data.length, config.data.seed))[None]
  nmse = jax.jit(functools.partial(model.nmse, cell, target_BxT=target_1xT, variance=float(jnp.var(target_1xT))))

  def loss_fn(params, model_state, batch, rng, is_training):
    del batch, rng, is_training
    return nmse(params), ({}, model_state)

  return train.Task(init=lambda key: (model.init_params(cell, hidden_size, key), None), loss_fn=loss_fn,
                    train_batch=lambda step: {}, evaluate=lambda params: {"nmse": float(nmse(params))},
                    tokens_per_batch=config.data.length)


def train_point(config, workdir: str) -> dict:
  """Trains one run (resuming from `workdir`) and writes its results.json; returns the results with the
  training curve and the emitted waveform."""
  m = config.model
  size = m.hidden_sizes[m.cell]
  task = make_task(config)
  params, finished_before = train.trained_params(task, config, workdir)
  output = model.emit_waveform(model.make_cell(m.cell, m.periods), params, 1, config.data.length)[0]
  curve = [[h["step"], h["loss"]] for h in train.read_metrics(workdir) if "loss" in h]
  if finished_before:
    results = workdir_lib.read_results(workdir)
  else:
    results = train.write_results(workdir, {
        "model": m.cell, "hidden_size": size, "learning_rate": config.optimizer.learning_rate, "seed": config.seed,
        "num_params": model.num_params(m.cell, size, m.periods), "nmse": task.evaluate(params)["nmse"]})
  return {**results, "loss_curve": curve, "output": np.asarray(output).tolist()}  # for the plot


def best_runs(runs: list[dict]) -> list[dict]:
  """For each model, its runs at the learning rate with the lowest mean NMSE over the seeds."""
  best = []
  for name in dict.fromkeys(r["model"] for r in runs):
    mine = [r for r in runs if r["model"] == name]
    rate = min(dict.fromkeys(r["learning_rate"] for r in mine),
               key=lambda lr: np.mean([r["nmse"] for r in mine if r["learning_rate"] == lr]))
    best += [r for r in mine if r["learning_rate"] == rate]
  return best


def table(best: list[dict]) -> str:
  """The README's results table: each model at its best rate."""
  lines = ["| model | hidden | params | best lr | NMSE per seed | mean NMSE |", "|---|---|---|---|---|---|"]
  for name in dict.fromkeys(r["model"] for r in best):
    mine = [r for r in best if r["model"] == name]
    lines.append(f"| {name} | {mine[0]['hidden_size']} | {mine[0]['num_params']} | {mine[0]['learning_rate']:g} | "
                 + ", ".join(f"{r['nmse']:.5f}" for r in mine) + f" | {np.mean([r['nmse'] for r in mine]):.5f} |")
  return "\n".join(lines)


def _sweep(config, workdir: str) -> list[dict]:
  """Every point's results, in the order models, learning rates, seeds."""
  runs = []
  for name in config.sweep.models:
    size, periods = config.model.hidden_sizes[name], config.model.periods
    masked = f" ({model.num_params(name, size, periods):,} trainable, the rest masked)" if name == "clockwork" else ""
    description = f"{size}-unit {name}{masked}"
    command_line.log_model_and_workdir(description, make_task(point_config(config, name, 1.0, 0)).init, workdir)
    for learning_rate in config.sweep.learning_rates:
      for seed in config.sweep.seeds:
        point = train_point(point_config(config, name, learning_rate, seed),
                            point_workdir(workdir, name, learning_rate, seed))
        print(f"{name} (H={point['hidden_size']}, {point['num_params']} params) lr {learning_rate:g} seed {seed}: "
              f"NMSE {point['nmse']:.4f}", flush=True)
        runs.append(point)
  return runs


def run(config, workdir: str) -> dict:
  """The sweep, each point in its own sub-workdir (a rerun resumes them); writes results.json, results.md and
  waveforms.png in `workdir` and returns the results."""
  validate(config)
  with workdir_lib.locked(workdir):
    workdir_lib.save_config(config, workdir)
    runs = _sweep(config, workdir)
    best = best_runs(runs)
    target_T = target_waveform(config.data.length, config.data.seed)
    workdir_lib.write_atomically(os.path.join(workdir, "results.md"), table(best) + "\n")
    plots.waveforms(target_T, best, os.path.join(workdir, "waveforms.png"))
    print(table(best))
    keep = ("model", "hidden_size", "learning_rate", "seed", "num_params", "nmse")
    return train.write_results(workdir, {"runs": [{k: r[k] for k in keep} for r in runs],
                                         "best": [{k: r[k] for k in keep} for r in best]})


def synthetic_train_step(batch: int, length: int, variant: str = "clockwork", **overrides) -> train.SyntheticStep:
  """The experiment's network `variant` (clockwork, lstm or elman, at the default config's size) emitting
  `length`-step waveforms from zero inputs, `batch` copies at once (the experiment itself fits one sequence).
  `overrides`: `hidden_size`, `periods`."""
  from experiments.clockwork.configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  hidden_size = overrides.pop("hidden_size", config.model.hidden_sizes[variant])
  config.model.lock()
  config.model.update(overrides)
  cell = model.make_cell(variant, config.model.periods)
  params = model.init_params(cell, hidden_size, jax.random.PRNGKey(0))
  target_T = target_waveform(length)
  targets_BxT = jnp.tile(jnp.asarray(target_T)[None], (batch, 1))
  loss = functools.partial(model.nmse, cell, variance=float(np.var(target_T)))
  periods = f", periods {list(config.model.periods)}" if variant == "clockwork" else ""
  return train.supervised_step(f"clockwork/{variant}", loss, params, train.make_optimizer(config.optimizer, 1, 1),
                               targets_BxT, batch * length, f"1x{hidden_size} {variant}{periods}")
