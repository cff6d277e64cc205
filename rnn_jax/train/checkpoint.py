"""Checkpoints with orbax: save every N steps and at the end, keep the last K, resume from the latest.

What is saved: the whole `TrainState` (params, optimizer state, step, model_state)
and the run's base RNG key. The data position is the step itself: tasks produce
batch `s` as a pure function of `s`, so restoring the step restores the data stream.
"""

from __future__ import annotations

import logging as py_logging
import os

import jax
import orbax.checkpoint as ocp
from absl import logging


class _QuietOrbax(py_logging.Filter):
  """Keeps orbax's per-save INFO chatter out of training logs (warnings still pass)."""

  def filter(self, record):
    return record.levelno >= py_logging.WARNING or "/orbax/" not in record.pathname


logging.get_absl_logger().addFilter(_QuietOrbax())


class CheckpointError(RuntimeError):
  """A checkpoint that exists but cannot be restored into the current run's state."""


class Checkpointer:
  """Thin wrapper over `ocp.CheckpointManager` with clear errors."""

  def __init__(self, directory: str, keep: int = 3, every: int = 1000):
    self.directory = os.path.abspath(directory)
    self.every = every
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def restore_latest(self, state, rng: jax.Array):
    """`(state, rng)` from the latest checkpoint, or the given ones if there is none.

    Raises CheckpointError naming the directory if the latest checkpoint is corrupt
    or was written by a model of another shape; nothing is deleted or overwritten.
    """
    step = self.latest_step()
    if step is None:
      return state, rng
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, {"state": state, "rng": rng})
    try:
      restored = self._manager.restore(step, args=ocp.args.StandardRestore(target))
    except Exception as e:  # orbax raises many types (ValueError, FileNotFoundError, KeyError, ...)
      raise CheckpointError(
          f"cannot restore checkpoint step {step} in {self.directory}: it is corrupt or was written by an "
          f"incompatible model/optimizer ({type(e).__name__}: {e}). Fix or move that directory, or use "
          "another workdir; it was left untouched.") from e
    logging.info("Restored checkpoint step %d from %s", step, self.directory)
    return restored["state"], restored["rng"]

  def save(self, step: int, state, rng: jax.Array, force: bool = False) -> bool:
    """Saves at multiples of `every` (or always if `force`); returns whether it saved."""
    if not force and step % self.every:
      return False
    if self._manager.latest_step() == step:
      return False
    self._manager.save(step, args=ocp.args.StandardSave({"state": state, "rng": rng}), force=True)
    self._manager.wait_until_finished()
    return True

  def close(self):
    self._manager.close()
