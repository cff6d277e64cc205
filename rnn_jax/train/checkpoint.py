"""Checkpoints with orbax: save every N steps and at the end, keep the last K, resume from the latest.

What is saved: the whole `TrainState` (params, optimizer state, step, model_state)
and the run's base RNG key. The data position is the step itself: tasks produce
batch `s` as a pure function of `s`, so restoring the step restores the data stream.
"""

from __future__ import annotations

import logging as py_logging
import os

import jax
import jax.numpy as jnp
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
        self.directory, item_handlers=ocp.StandardCheckpointHandler(),
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

    def fail(problem, cause=None):
      raise CheckpointError(
          f"cannot restore checkpoint step {step} in {self.directory}: {problem}. Fix or move that directory, "
          "or use another workdir; it was left untouched.") from cause

    try:  # compare with the stored shapes first: orbax's own mismatch error comes amid its threads' tracebacks
      stored = _shapes(self._manager.item_metadata(step))
    except Exception as e:  # orbax raises many types (ValueError, FileNotFoundError, KeyError, ...)
      fail(f"its metadata cannot be read ({type(e).__name__}: {e})", e)
    differences = _differences(stored, _shapes(target))
    if differences:
      fail("it was written by an incompatible model/optimizer (" + "; ".join(differences) + ")")
    try:
      restored = self._manager.restore(step, args=ocp.args.StandardRestore(target))
    except Exception as e:
      fail(f"it is corrupt ({type(e).__name__}: {e})", e)
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


def _shapes(tree) -> dict:
  """`{"state/params/w_h": "float32(32, 16)", ...}` for a pytree of arrays (or Python scalars, which
  are saved as arrays) or of orbax's array metadata."""
  def name(key):
    return str(getattr(key, "key", getattr(key, "name", getattr(key, "idx", key))))
  def describe(leaf):
    dtype = leaf.dtype if hasattr(leaf, "dtype") else jnp.result_type(leaf)
    return f"{jnp.dtype(dtype).name}{tuple(getattr(leaf, 'shape', ()))}"
  return {"/".join(map(name, path)): describe(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _differences(stored: dict, expected: dict, most: int = 3) -> list[str]:
  """Up to `most` lines naming leaves that are missing, extra or of another shape or dtype."""
  lines = [f"{k}: stored {stored[k]}, this run {expected[k]}"
           for k in expected if k in stored and stored[k] != expected[k]]
  lines += [f"{k}: not in the checkpoint" for k in expected if k not in stored]
  lines += [f"{k}: not in this run" for k in stored if k not in expected]
  return lines[:most] + ([f"and {len(lines) - most} more"] if len(lines) > most else [])
