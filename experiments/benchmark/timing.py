"""Timing: a `Timer` per implementation of a step, `measure` alternating them in rounds, the matmul ceiling.

The first call of a jitted step is compiled ahead of time and reported as `compile_s`
(trace + lower + compile; with `compile_rounds` > 1 the fastest of that many compilations,
alternating implementations, each after clearing JAX's caches, and `compile_s_median` their
median); then `warmup` calls; then `rounds` rounds, each `iters` back-to-back calls that each
block until ready (`iters` chosen so that a round lasts at least `min_round_s`). All
implementations of a row take their rounds in turn (rotating the order), so load on a shared
machine hits them alike; compare their medians, or better their ratio, never absolute times
from different runs.

  timers = [implementations.rnn_jax(spec), implementations.torch(spec)]
  results = measure(timers, rounds=5)         # compile once each, then alternate rounds
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from experiments.benchmark.spec import DTYPES


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

