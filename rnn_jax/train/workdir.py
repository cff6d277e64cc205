"""What a run keeps in its workdir besides checkpoints: the lock, `config.json`, the task's files, `metrics.jsonl`,
`results.json`.

Every file is replaced atomically (written beside it, then renamed), so a crash at any moment leaves either the
old or the new file, never half of one. One run at a time holds a workdir: `locked` takes an exclusive lock
(`workdir/lock`, naming the holder's pid and host) that the operating system releases when the holder exits,
however it exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from tensorboardX import SummaryWriter

from rnn_jax.train import hparams
from rnn_jax.train.errors import NotTrainedError, WorkdirLockedError


def _lock_path(workdir: str) -> str:
  return os.path.join(workdir, "lock")


@contextlib.contextmanager
def locked(workdir: str):
  """Holds an exclusive lock on `workdir` (created if needed) for the `with` block.

  Raises WorkdirLockedError naming the holder if another process holds it. A lock file left by a process
  that is gone (killed, machine restarted) holds nothing: it is taken over, and the log says so.
  """
  os.makedirs(workdir, exist_ok=True)
  fd = os.open(_lock_path(workdir), os.O_RDWR | os.O_CREAT, 0o644)
  try:
    holder = os.read(fd, 1000).decode(errors="replace").strip()
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise WorkdirLockedError(
          f"{os.path.abspath(workdir)} is in use by another run ({holder or 'holder unknown'}): wait for it to "
          "end or stop it, or use another --workdir") from None
    if holder:
      logging.warning("Taking over %s, left by a run that is gone (%s)", _lock_path(workdir), holder)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()} since {time.ctime()}\n".encode(), 0)
    try:
      yield
    finally:
      os.ftruncate(fd, 0)  # an empty lock file: nobody holds the workdir
  finally:
    os.close(fd)  # releases the lock


def write_atomically(path: str, body: str | bytes) -> None:
  """Replaces `path` by `body` (text: UTF-8) in one rename: a reader or a crash sees the old file or the new,
  never a part."""
  partial = f"{path}.partial"
  with open(partial, "wb") as f:
    f.write(body.encode("utf-8") if isinstance(body, str) else body)
    f.flush()
    os.fsync(f.fileno())
  os.replace(partial, path)


def config_path(workdir: str) -> str:
  return os.path.join(workdir, "config.json")


def save_config(config, workdir: str) -> None:
  """Writes the run's full config (derived fields included) as `workdir/config.json`."""
  write_atomically(config_path(workdir), config.to_json_best_effort(indent=2))


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a training run saved in `workdir` (tuples come back as lists)."""
  path = config_path(workdir)
  if not os.path.exists(path):
    raise NotTrainedError(f"no config.json in {workdir}: train with this --workdir first")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def _metrics_path(workdir: str) -> str:
  return os.path.join(workdir, "metrics.jsonl")


def read_metrics(workdir: str) -> list[dict]:
  """The metrics a run wrote: one dict per write; training lines hold "loss", evaluation lines `<split>_*` and
  `"evaluation": True`."""
  path = _metrics_path(workdir)
  if not os.path.exists(path):
    return []
  with open(path) as f:  # a last line without its newline is a write a crash cut short
    return [json.loads(line) for line in f if line.endswith("\n")]


def results_path(workdir: str) -> str:
  return os.path.join(workdir, "results.json")


def read_results(workdir: str) -> dict | None:
  """The `results.json` a finished run wrote in `workdir`, or None."""
  if not os.path.exists(results_path(workdir)):
    return None
  with open(results_path(workdir)) as f:
    return json.load(f)


def remove_results(workdir: str) -> None:
  """Removes `results.json`: a run that trains further makes it stale (it writes it again when it ends)."""
  if os.path.exists(results_path(workdir)):
    os.remove(results_path(workdir))


def config_differences(config, workdir: str) -> list[str]:
  """The dotted names of the fields in which `config` differs from the `config.json` saved in `workdir`."""
  if not os.path.exists(config_path(workdir)):
    return []
  with open(config_path(workdir)) as f:
    saved = hparams.flatten(json.load(f))
  given = hparams.flatten(json.loads(config.to_json_best_effort()))
  return sorted(name for name in saved.keys() | given.keys() if saved.get(name) != given.get(name))


def finished_message(workdir: str, config, results: dict) -> str:
  """What a rerun of the finished run in `workdir` says: that it is finished, and its results."""
  lines = [f"{os.path.abspath(workdir)} holds a finished run: all {config.num_steps} steps trained and its results "
           "written, so nothing is trained or recomputed (a larger --config.num_steps trains on; another --workdir "
           "starts afresh)."]
  differing = config_differences(config, workdir)
  if differing:
    lines.append(f"This command's config differs from the run's config.json in {', '.join(differing)}: not used.")
  shown = {name: value for name, value in results.items() if name != "history"}
  lines.append(f"{results_path(workdir)}: {json.dumps(shown, indent=1)}")
  return "\n".join(lines)


def finished_sweep_results(workdir: str, every_point_finished: bool, table: str) -> dict | None:
  """A sweep's `results.json` when it and every point of the sweep were finished before (printing so, with
  `table`); else None, and the sweep gathers its points afresh."""
  results = read_results(workdir) if every_point_finished else None
  if results is not None:
    print(f"{os.path.abspath(workdir)} holds a finished sweep: every point trained and scored, nothing is "
          f"recomputed.\n{table}")
  return results


def write_results(workdir: str, results: dict) -> dict:
  """`results` with the run's median speed, machine and evaluation history (from `metrics.jsonl`), written to
  `workdir/results.json` and returned."""
  history = read_metrics(workdir)
  speeds = [h["steps_per_s"] for h in history if "steps_per_s" in h]
  results = {**results, "median_steps_per_s": float(np.median(speeds)) if speeds else None,
             "machine": f"{os.cpu_count()} CPU cores, jax {jax.__version__} on {jax.default_backend()}",
             "history": [h for h in history if any(k.startswith("valid") for k in h)]}
  write_atomically(results_path(workdir), json.dumps(results, indent=1))
  logging.info("results: %s", {k: v for k, v in results.items() if k != "history"})
  return results


class MetricWriter:
  """Writes scalars to TensorBoard (tensorboardX) and to `metrics.jsonl` (one JSON object per line, with the
  step and the wall-clock `time` in seconds since the epoch).

  Resuming from a checkpoint at `resume_step` first drops the lines past it (they belong to steps that will be
  trained again) and keeps the last of any lines written twice for one step, so the file never holds a step
  twice.
  """

  def __init__(self, workdir: str, resume_step: int, write: bool = True):
    """`write=False` (every process of a run but the first): reads what was written, writes nothing."""
    self._path = _metrics_path(workdir)
    kept = {(m["step"], bool(m.get("evaluation"))): m for m in read_metrics(workdir) if m["step"] <= resume_step}
    kept = sorted(kept.values(), key=lambda m: (m["step"], bool(m.get("evaluation"))))  # one line per write
    self._evaluated = {m["step"] for m in kept if m.get("evaluation")}
    self._tb = SummaryWriter(os.path.join(workdir, "tensorboard")) if write else None
    if write:
      write_atomically(self._path, "".join(json.dumps(m) + "\n" for m in kept))

  def evaluated(self, step: int) -> bool:
    """Whether an evaluation at `step` was written."""
    return step in self._evaluated

  def write(self, step: int, metrics: dict, evaluation: bool = False) -> None:
    if evaluation:
      self._evaluated.add(step)
    if self._tb is None:
      return
    for name, value in metrics.items():
      self._tb.add_scalar(name, value, step)
    line = {"step": step, "time": time.time(), **{k: float(v) for k, v in metrics.items()}}
    if evaluation:
      line["evaluation"] = True
    with open(self._path, "a") as f:
      f.write(json.dumps(line) + "\n")

  def close(self):
    if self._tb is None:
      return
    try:
      self._tb.close()
    except OSError as e:  # e.g. a full disk: metrics.jsonl holds the same scalars
      logging.warning("TensorBoard events in %s not flushed: %s", self._tb.logdir, e)
