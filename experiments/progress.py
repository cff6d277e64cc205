"""Periodic progress lines (count, elapsed time, ETA) for phases that can take longer than a few seconds."""

from __future__ import annotations

import time
from typing import Callable

from absl import logging

EVERY_S = 10.0  # seconds between lines


def progress_line(what: str, done: int, total: int, elapsed_s: float) -> str:
  """E.g. "decoding test sequences: 120/480, 25 s, ETA 75 s"."""
  eta = f"ETA {elapsed_s / done * (total - done):.0f} s" if done else "ETA unknown"
  return f"{what}: {done}/{total}, {elapsed_s:.0f} s, {eta}"


class Progress:
  """Logs `progress_line` at most every `every_s` seconds as `update(done)` is called, and once at the end
  when lines were logged before it."""

  def __init__(self, what: str, total: int, every_s: float | None = None,
               clock: Callable[[], float] = time.perf_counter):
    self._what, self._total, self._clock = what, total, clock
    self._every_s = EVERY_S if every_s is None else every_s
    self._start = self._last = clock()
    self._logged = False

  def update(self, done: int) -> None:
    now = self._clock()
    finished = done >= self._total
    if now - self._last >= self._every_s or (finished and self._logged):
      logging.info("%s", progress_line(self._what, done, self._total, now - self._start))
      self._last, self._logged = now, True
