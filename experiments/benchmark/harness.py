"""Timing, FLOP counting and reporting for the benchmark (see main.py for the command line).

A benchmark row is one implementation at one point of the grid:

  spec = Spec(cell="lstm", mode="fwdbwd", batch=32, length=100, hidden=256)
  timers = [implementations.rnn_jax(spec), implementations.torch(spec)]
  results = measure(timers, rounds=5)         # compile once each, then alternate rounds
  rows = [make_row(spec, t, r, ceiling) for t, r in zip(timers, results)]

Timing: the first call of a jitted step is compiled ahead of time and reported as
`compile_s` (trace + lower + compile; with `compile_rounds` > 1 the fastest of that many
compilations, alternating implementations, each after clearing JAX's caches, and
`compile_s_median` their median); then `warmup` calls; then `rounds` rounds, each
`iters` back-to-back calls that each block until ready (`iters` chosen so that a round
lasts at least `min_round_s`). All implementations of a row take their rounds in turn
(rotating the order), so load on a shared machine hits them alike; compare their
medians, or better their ratio, never absolute times from different runs.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime
import json
import math
import os
import platform
import statistics
import time
from typing import Any, Callable, Sequence

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np

from rnn_jax import scan

MODES = ("fwd", "fwdbwd")
DIRECTIONS = ("uni", "bi")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
HOISTS = {"auto": None, "true": True, "false": False}  # --hoist: the runner's `hoist`


@dataclasses.dataclass(frozen=True)
class Spec:
  """One point of the grid. `input_size` 0 means equal to `hidden`; `cell_options` are the
  cell's static options as `key=value` items joined by commas (see `cell_options`). A value the
  harness cannot time raises ValueError naming the field."""
  cell: str = "lstm"
  cell_options: str = ""
  mode: str = "fwdbwd"
  batch: int = 32
  length: int = 100
  hidden: int = 256
  input_size: int = 0
  layers: int = 1
  direction: str = "uni"
  dtype: str = "float32"
  unroll: int = 1
  remat: bool = False
  hoist: str = "auto"         # HOISTS: "auto" (the runner's choice), "true", "false"
  backward: str = "auto"      # the runner's `backward` (scan.BACKWARDS): "auto", "autodiff", "fused"
  time_major: bool = True

  def __post_init__(self):
    # The runner's options are None in the rows of other implementations (`bench.run_grid`).
    choices = {"mode": MODES, "direction": DIRECTIONS, "dtype": tuple(DTYPES), "hoist": tuple(HOISTS),
               "backward": scan.BACKWARDS}
    for name, allowed in choices.items():
      value = getattr(self, name)
      if value not in allowed and not (value is None and name in ("hoist", "backward")):
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    for name, least in (("batch", 1), ("length", 1), ("hidden", 1), ("layers", 1), ("unroll", 1), ("input_size", 0)):
      value = getattr(self, name)
      if value is not None and value < least:
        raise ValueError(f"{name} must be at least {least}; got {value}")

  @property
  def options(self) -> dict:
    """`cell_options` as keyword arguments for `rnn_jax.cells.get`."""
    return cell_options(self.cell_options.split(",") if self.cell_options else [])

  @property
  def inputs(self) -> int:
    return self.input_size or self.hidden

  @property
  def tokens(self) -> int:
    return self.batch * self.length


def cell_options(items: Sequence[str]) -> dict:
  """`["peepholes=True", "forget_bias=0.5"]` -> `{"peepholes": True, "forget_bias": 0.5}`: values
  are Python literals, anything else a string."""
  options = {}
  for item in items:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
      raise ValueError(f"a cell option is key=value (e.g. peepholes=True); got {item!r}")
    try:
      options[key.strip()] = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
      options[key.strip()] = value.strip()
  return options


def _weight_matrices(layer_params) -> list:
  """The 2-D weights one direction of a layer multiplies each step (w_x, w_h)."""
  return [layer_params[k] for k in ("w_x", "w_h")]


def matmul_flops(spec: Spec, params_per_layer: Sequence) -> int:
  """FLOPs of the matmuls one step (call) of `spec` performs, from the weight shapes.

  Forward: `2 * B * T * (I*G + H*G)` per layer and direction (`x W_x` and `h W_h`, with
  `G` the gate width). The backward pass multiplies each forward matmul twice more (the
  gradients w.r.t. both operands), so fwd+bwd is 3x forward. Model FLOPs: work that
  remat recomputes is not counted, so FLOP/s compare across remat settings.
  """
  per_token = 0
  for layer in params_per_layer:
    directions = [layer["forward"], layer["backward"]] if set(layer) == {"forward", "backward"} else [layer]
    for p in directions:
      per_token += sum(2 * int(np.prod(w.shape)) for w in _weight_matrices(p))
  forward = spec.batch * spec.length * per_token
  return forward if spec.mode == "fwd" else 3 * forward


def jaxpr_matmul_flops(fn: Callable, *args) -> int:
  """FLOPs of every `dot_general` `fn(*args)` executes, read off its jaxpr.

  Loops are expanded (`scan` bodies count `length` times); for `cond` the costliest
  branch counts. Used for whole train steps, where no closed form is at hand, and in
  the tests as an independent check of `matmul_flops`.
  """
  return _count_jaxpr(jax.make_jaxpr(fn)(*args).jaxpr)


def _dot_flops(eqn) -> int:
  (lhs_contract, _), (lhs_batch, _) = eqn.params["dimension_numbers"]
  lhs, rhs = (v.aval.shape for v in eqn.invars)
  out = eqn.outvars[0].aval.shape
  contracted = int(np.prod([lhs[d] for d in lhs_contract]))
  del rhs, lhs_batch  # the output holds batch and free dimensions
  return 2 * int(np.prod(out)) * contracted


def _sub_jaxprs(value):
  if isinstance(value, jax.extend.core.ClosedJaxpr):
    yield value.jaxpr
  elif isinstance(value, jax.extend.core.Jaxpr):
    yield value
  elif isinstance(value, (tuple, list)):
    for v in value:
      yield from _sub_jaxprs(v)


def _count_jaxpr(jaxpr) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "dot_general":
      total += _dot_flops(eqn)
    elif name == "scan":
      total += eqn.params["length"] * _count_jaxpr(eqn.params["jaxpr"].jaxpr)
    elif name == "cond":
      total += max(_count_jaxpr(b.jaxpr) for b in eqn.params["branches"])
    elif name == "while":
      raise ValueError("cannot count the FLOPs of a while loop with an unknown trip count")
    else:
      for value in eqn.params.values():
        for sub in _sub_jaxprs(value):
          total += _count_jaxpr(sub)
  return total


class Timer:
  """One implementation of a step: `prepare()` compiles and warms it up, `run(iters)` times it.

  Args:
    name: the implementation ("rnn_jax", "flax", "torch", ...).
    step: calls one step and blocks until its results are ready.
    compile_fn: compiles ahead of time (None: the first call, or a `compile_s` set before
      `prepare`, is reported as the compile time).
    flops: matmul FLOPs of one step.
    extra: fields added to the row (e.g. the memory XLA planned).
  """

  def __init__(self, name: str, step: Callable[[], Any], compile_fn: Callable[[], Any] | None = None,
               flops: int | None = None, extra: dict | None = None):
    self.name, self.step, self.compile_fn, self.flops = name, step, compile_fn, flops
    self.extra = dict(extra or {})
    self.compile_s = None
    self.compile_times = []  # seconds of each ahead-of-time compilation
    self.first_call_s = None

  def _compile(self):
    """Runs `compile_fn` and records its time; `compile_s` is the fastest compilation so far."""
    start = time.perf_counter()
    self.compile_fn()
    self.compile_times.append(time.perf_counter() - start)
    self.compile_s = min(self.compile_times)

  def prepare(self, warmup: int) -> float:
    """Compiles, runs the warm-up calls; returns the duration of the last warm-up call."""
    if self.compile_fn is not None:
      self._compile()
    start = time.perf_counter()
    self.step()
    self.first_call_s = time.perf_counter() - start
    if self.compile_s is None:  # no ahead-of-time compilation: the first call's time
      self.compile_s = self.first_call_s
    last = self.first_call_s
    for _ in range(warmup):
      start = time.perf_counter()
      self.step()
      last = time.perf_counter() - start
    return last

  def recompile(self):
    """Compiles again from cold JAX caches (trace, lowering, executables), then calls the new
    executable once; `compile_s` becomes the fastest compilation so far. No-op without `compile_fn`."""
    if self.compile_fn is None:
      return
    jax.clear_caches()
    self._compile()
    self.step()

  def run(self, iters: int) -> tuple[float, float]:
    """Wall and process-CPU seconds per call, averaged over `iters` calls."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(iters):
      self.step()
    return (time.perf_counter() - wall) / iters, (time.process_time() - cpu) / iters


@dataclasses.dataclass
class Result:
  walls: list
  cpus: list
  iters: int

  @property
  def median_s(self) -> float:
    return statistics.median(self.walls)


def measure(timers: Sequence[Timer], rounds: int = 5, warmup: int = 1, min_round_s: float = 0.2,
            compile_rounds: int = 1) -> list[Result]:
  """Prepares every timer, compiles those that compile ahead of time `compile_rounds - 1` more
  times, then runs `rounds` rounds; both alternate timers, rotating the order."""
  iters = []
  for timer in timers:
    last = timer.prepare(warmup)
    iters.append(max(1, math.ceil(min_round_s / max(last, 1e-9))))
  rotations = lambda r: [(r + k) % len(timers) for k in range(len(timers))]
  for r in range(1, compile_rounds):
    for k in rotations(r):
      timers[k].recompile()
  results = [Result([], [], n) for n in iters]
  for r in range(rounds):
    for k in rotations(r):
      wall, cpu = timers[k].run(iters[k])
      results[k].walls.append(wall)
      results[k].cpus.append(cpu)
  return results


def matmul_timer(dtype: str = "float32", size: int = 2048) -> Timer:
  """One large `[size, size] x [size, size]` matmul: its FLOP/s is the device's ceiling."""
  a = jax.random.normal(jax.random.PRNGKey(0), (size, size), DTYPES[dtype])
  b = jax.random.normal(jax.random.PRNGKey(1), (size, size), DTYPES[dtype])
  holder = {}
  timer = Timer("matmul", lambda: jax.block_until_ready(holder["compiled"](a, b)), flops=2 * size ** 3)
  timer.compile_fn = lambda: holder.update(compiled=jax.jit(jnp.matmul).lower(a, b).compile())
  return timer


def matmul_ceiling(dtype: str = "float32", size: int = 2048, rounds: int = 5) -> float:
  """FLOP/s of `matmul_timer`'s matmul on the default device, timed alone."""
  timer = matmul_timer(dtype, size)
  return timer.flops / measure([timer], rounds=rounds, warmup=2)[0].median_s


def environment() -> dict:
  """Backend, device and versions, recorded with every row."""
  import flax  # pylint: disable=g-import-not-at-top
  device = jax.devices()[0]
  env = {
      "backend": jax.default_backend(),
      "device": f"{device.platform}:{getattr(device, 'device_kind', '?')}",
      "num_devices": jax.device_count(),
      "host_cpus": os.cpu_count(),
      "cpu": _cpu_model(),
      "jax": jax.__version__,
      "jaxlib": getattr(jax.lib, "__version__", None) or _jaxlib_version(),
      "flax": flax.__version__,
      "python": platform.python_version(),
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
  }
  try:
    import torch  # pylint: disable=g-import-not-at-top
    env["torch"] = torch.__version__
    env["torch_threads"] = torch.get_num_threads()
  except ImportError:
    pass
  return env


def _jaxlib_version():
  import jaxlib  # pylint: disable=g-import-not-at-top
  return jaxlib.__version__


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def keep_freed_memory() -> bool:
  """Makes glibc malloc keep freed memory for reuse instead of returning it to the OS.

  XLA:CPU allocates each execution's temporaries as one block; above glibc's mmap
  threshold (at most 32 MiB) that block is mmap-ed fresh at every call and every page
  faults on first touch: 16k page faults and ~25 ms of kernel time per LSTM fwd+bwd at
  B=32, H=256, T=100, a third of the step. Torch pays the same on its smaller
  buffers. With mmap off, one arena (per-thread arenas are mmap-ed heaps of at most
  64 MiB) and no trimming, steady-state steps fault no pages. A process-wide setting
  for benchmarks and CPU training; returns whether it applied.
  """
  import ctypes  # pylint: disable=g-import-not-at-top
  import ctypes.util  # pylint: disable=g-import-not-at-top
  name = ctypes.util.find_library("c")
  if not name or platform.system() != "Linux":
    return False
  libc = ctypes.CDLL(name)
  m_trim_threshold, m_mmap_max, m_arena_max = -1, -4, -8  # from glibc's malloc.h
  return all(libc.mallopt(option, value) for option, value in
             [(m_arena_max, 1), (m_mmap_max, 0), (m_trim_threshold, 2 ** 31 - 1)])


def device_peak_bytes() -> int | None:
  """The device's peak memory in use so far (a high-water mark), where the backend reports it."""
  stats = jax.devices()[0].memory_stats()
  return None if not stats else stats.get("peak_bytes_in_use")


def make_row(spec: Spec | None, timer: Timer, result: Result, ceiling_flops: float | None, env: dict,
             **fields) -> dict:
  """One JSON-lines record: the spec, the timings and the derived rates."""
  walls = sorted(result.walls)
  median = statistics.median(walls)
  row = {"impl": timer.name, **(dataclasses.asdict(spec) if spec else {}), **fields}
  tokens = row.get("tokens") or (spec.tokens if spec else None)
  row.update({
      "compile_s": timer.compile_s,
      "compile_s_median": statistics.median(timer.compile_times) if timer.compile_times else timer.compile_s,
      "compile_rounds": max(1, len(timer.compile_times)),
      "first_call_s": timer.first_call_s,
      "median_s": median,
      "min_s": walls[0],
      "max_s": walls[-1],
      "spread": (walls[-1] - walls[0]) / median,
      "cpu_s": statistics.median(result.cpus),
      "rounds": len(walls),
      "iters": result.iters,
      "tokens_per_s": tokens / median if tokens else None,
      "flops": timer.flops,
      "flops_per_s": timer.flops / median if timer.flops else None,
      "ceiling_flops_per_s": ceiling_flops,
      "fraction_of_ceiling": timer.flops / median / ceiling_flops if timer.flops and ceiling_flops else None,
      "load_avg_1m": os.getloadavg()[0],
      **timer.extra,
      **env,
  })
  return row


def add_ratios(rows: list[dict], reference: str = "rnn_jax") -> None:
  """Sets `speedup_of_<reference>` = this row's median / the first reference row's (and the same
  for process CPU time, `cpu_speedup_of_<reference>`), for rows timed together."""
  ref = [r for r in rows if r["impl"] == reference]
  if not ref:
    return
  for r in rows:
    r[f"speedup_of_{reference}"] = r["median_s"] / ref[0]["median_s"]
    r[f"cpu_speedup_of_{reference}"] = r["cpu_s"] / ref[0]["cpu_s"] if ref[0]["cpu_s"] > 0 else None


def write_jsonl(path: str, rows: Sequence[dict]) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "a") as f:
    for r in rows:
      f.write(json.dumps(r, default=str) + "\n")


_COLUMNS = [  # (header, key, format)
    ("impl", "impl", "{}"), ("cell", "cell", "{}"), ("options", "cell_options", "{}"), ("mode", "mode", "{}"),
    ("B", "batch", "{}"),
    ("T", "length", "{}"), ("H", "hidden", "{}"), ("L", "layers", "{}"), ("dir", "direction", "{}"),
    ("dtype", "dtype", "{}"), ("unroll", "unroll", "{}"), ("remat", "remat", "{}"), ("bwd", "backward", "{}"),
    ("compile s", "compile_s", "{:.2f}"), ("median ms", "median_s", "{:.1f}", 1e3),
    ("min ms", "min_s", "{:.1f}", 1e3), ("spread", "spread", "{:.0%}"), ("cpu ms", "cpu_s", "{:.1f}", 1e3),
    ("tok/s", "tokens_per_s", "{:.3g}"),
    ("GFLOP/s", "flops_per_s", "{:.1f}", 1e-9), ("ceil", "fraction_of_ceiling", "{:.0%}"),
    ("temp MB", "temp_bytes", "{:.1f}", 1e-6), ("x rnn_jax", "speedup_of_rnn_jax", "{:.2f}"),
    ("x rnn_jax cpu", "cpu_speedup_of_rnn_jax", "{:.2f}"),
    ("dev", "devices", "{}"), ("tok/s/dev", "tokens_per_s_per_device", "{:.3g}"), ("eff", "scaling_efficiency", "{:.0%}"),
]


def format_table(rows: Sequence[dict]) -> str:
  """A markdown table of the rows (columns with no values are left out)."""
  cols = [c for c in _COLUMNS if any(r.get(c[1]) not in (None, "") for r in rows)]
  def cell(r, c):
    v = r.get(c[1])
    if v is None:
      return "-"
    return c[2].format(v * c[3]) if len(c) > 3 else c[2].format(v)
  lines = ["| " + " | ".join(c[0] for c in cols) + " |", "|" + "---|" * len(cols)]
  lines += ["| " + " | ".join(cell(r, c) for c in cols) + " |" for r in rows]
  return "\n".join(lines)


def format_comparison(rows: Sequence[dict]) -> str:
  """One line per grid point: each implementation's median ms and its time / the first rnn_jax row's.

  rnn_jax rows are labelled by their runner options where these differ within the point.
  """
  points: dict = {}
  for r in rows:
    key = tuple(r.get(k) for k in ("cell", "mode", "batch", "hidden", "length", "layers", "direction", "dtype",
                                   "cell_options"))
    points.setdefault(key, []).append(r)
  def label(r, group):
    if r["impl"] != "rnn_jax":
      return r["impl"]
    varying = [k for k in ("backward", "hoist", "remat", "unroll")
               if len({g.get(k) for g in group if g["impl"] == "rnn_jax"}) > 1]
    return "rnn_jax" + "".join(f" {k}={r[k]}" for k in varying)
  lines = ["| cell | mode | BxHxT | " + "implementation: median ms (time / rnn_jax's) |", "|---|---|---|---|"]
  for (cell, mode, batch, hidden, length, *_, options), group in points.items():
    cell = f"{cell}({options})" if options else cell
    ref = next((g for g in group if g["impl"] == "rnn_jax"), group[0])
    cells = [f"{label(r, group)}: {1e3 * r['median_s']:.1f} ({r['median_s'] / ref['median_s']:.2f})" for r in group]
    lines.append(f"| {cell} | {mode} | {batch}x{hidden}x{length} | " + "; ".join(cells) + " |")
  return "\n".join(lines)
