"""Checkpoints with orbax: save every N steps and at the end, keep the last K, resume from the latest.

What is saved: the whole `TrainState` (params, optimizer state, step, model_state)
and the run's base RNG key. The data position is the step itself: tasks produce
batch `s` as a pure function of `s`, so restoring the step restores the data stream.
With each checkpoint go a CRC-32 checksum of every saved array, verified on restore,
and the caller's small JSON `metadata`.
"""

from __future__ import annotations

import gc
import logging as py_logging
import os
import re
import shutil
import sys
import zlib

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from rnn_jax.train.errors import RunError


class _QuietOrbax(py_logging.Filter):
  """Keeps orbax's per-save INFO chatter out of training logs (warnings still pass), and while a save or restore
  runs or fails all of its records and asyncio's reports of its failed tasks: a failure raises CheckpointError
  with the root cause instead of its threads' tracebacks."""

  quiet = False
  failed = False  # a save or restore failed: the run ends with its CheckpointError

  def filter(self, record):
    if record.name == "asyncio":
      return not _QuietOrbax.quiet
    if "/orbax/" not in record.pathname:
      return True
    return record.levelno >= py_logging.WARNING and not _QuietOrbax.quiet


logging.get_absl_logger().addFilter(_QuietOrbax())
py_logging.getLogger("asyncio").addFilter(_QuietOrbax())


def _drop_failed_orbax_noise(unraisable, report=sys.unraisablehook):
  """A save failing midway leaves orbax's writes behind: TensorStore's threads finish them and post to orbax's
  closed event loop ("RuntimeError: Event loop is closed"), and orbax's abandoned coroutines raise again when
  collected ("Exception ignored in: <coroutine ...>"). Their error is the CheckpointError raised; anything else is
  reported."""
  code = getattr(unraisable.object, "cr_code", None)
  if _QuietOrbax.failed and code is not None and "/orbax/" in code.co_filename:
    return
  closed_loop = (unraisable.object is None and isinstance(unraisable.exc_value, RuntimeError)
                 and str(unraisable.exc_value) == "Event loop is closed")
  if closed_loop and (_QuietOrbax.quiet or _QuietOrbax.failed):
    return
  report(unraisable)


sys.unraisablehook = _drop_failed_orbax_noise

_METADATA_BYTES = 1 << 20  # room a checkpoint needs beside its arrays (orbax's metadata files)


class CheckpointError(RunError):
  """A checkpoint that cannot be restored into the current run's state, or cannot be saved."""

  ends_at_once = True  # orbax's abandoned threads would report their closed event loop at the interpreter's exit


class Checkpointer:
  """Thin wrapper over `ocp.CheckpointManager` with clear errors."""

  def __init__(self, directory: str, keep: int = 3, read_only: bool = False):
    """`read_only`: for reading a workdir that a run may be writing (no folder created, no partial save removed);
    otherwise the caller holds the workdir, and a save a crash left unfinished is removed."""
    self.directory = os.path.abspath(directory)
    _QuietOrbax.quiet = read_only  # orbax warns that a read-only manager saves nothing: that is the point
    try:
      self._manager = ocp.CheckpointManager(
          self.directory, item_handlers=ocp.StandardCheckpointHandler(),
          options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only, read_only=read_only,
                                               cleanup_tmp_directories=not read_only,
                                               enable_async_checkpointing=False))
    finally:
      _QuietOrbax.quiet = False

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def restore_latest(self, state, rng: jax.Array):
    """`(state, rng, metadata)` from the latest checkpoint, or the given ones and `{}` if there is none.

    Raises CheckpointError naming the checkpoint (and the leaf, where one is at fault) if it is corrupt or was
    written by a model of another shape; nothing is deleted or overwritten.
    """
    step = self.latest_step()
    if step is None:
      return state, rng, {}
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, {"state": state, "rng": rng})
    try:  # compare with the stored shapes first: orbax's own mismatch error comes amid its threads' tracebacks
      stored = _shapes(self._manager.item_metadata(step))
    except Exception as e:  # orbax raises many types (ValueError, FileNotFoundError, KeyError, ...)
      raise self._error(step, f"its metadata cannot be read ({one_line(e)})") from None
    differences = _differences(stored, _shapes(target))
    if differences:
      raise self._error(step, "it was written by an incompatible model/optimizer (" + "; ".join(differences) + ")",
                        corrupt=False)
    _QuietOrbax.quiet = True
    try:
      restored = self._manager.restore(step, args=ocp.args.StandardRestore(target))
      metadata = dict(self._manager.metadata(step).custom_metadata or {})
    except Exception as e:
      _QuietOrbax.failed = True
      gc.collect()  # finalise orbax's failed reads now (asyncio reports them when collected), not at shutdown
      raise self._error(step, f"it is corrupt ({one_line(e)})") from None
    finally:
      _QuietOrbax.quiet = False
    saved_checksums = metadata.pop("checksums", {})  # checkpoints written without them are not checked
    changed = [name for name, crc in checksums(restored).items() if saved_checksums.get(name, crc) != crc]
    if changed:
      raise self._error(step, f"{changed[0]} differs from what was saved (checksum mismatch): the file is corrupt")
    logging.info("Restored checkpoint step %d from %s", step, self.directory)
    return restored["state"], restored["rng"], metadata

  def _error(self, step: int, problem: str, corrupt: bool = True) -> CheckpointError:
    """The one-line error for checkpoint `step`, saying how to go on."""
    earlier = [s for s in self._manager.all_steps() if s < step]
    fallback = f"resume from step {max(earlier)}" if earlier else "start over"
    fix = (f"move {os.path.join(self.directory, str(step))} out of {self.directory} to {fallback}" if corrupt
           else "use another --workdir or the run's own config")
    return CheckpointError(f"cannot restore checkpoint step {step} in {self.directory}: {problem}. To go on, {fix}; "
                           "nothing was changed")

  def save(self, step: int, state, rng: jax.Array, metadata: dict | None = None) -> bool:
    """Saves step `step` with the checksums of its arrays and `metadata` (a small JSON-able dict, returned by
    `restore_latest`); returns False if that step is saved already."""
    if self._manager.latest_step() == step:
      return False
    item = {"state": state, "rng": rng}
    needed = sum(jnp.asarray(leaf).nbytes for leaf in jax.tree.leaves(item)) + _METADATA_BYTES
    if self._free_bytes() < needed:  # refuse before writing: a write failing midway also prints TensorStore's noise
      raise self._save_error(step, f"it needs about {needed / 2**20:.1f} MiB")
    _QuietOrbax.quiet = True
    try:
      self._manager.save(step, args=ocp.args.StandardSave(item), force=True,
                         custom_metadata={**(metadata or {}), "checksums": checksums(item)})
      self._manager.wait_until_finished()
    except Exception as e:  # orbax raises many types; a full disk is a ValueError from TensorStore
      _QuietOrbax.failed = True
      gc.collect()  # finalise orbax's abandoned writes now, not amid the interpreter's shutdown
      raise self._save_error(step, one_line(e)) from None
    finally:
      _QuietOrbax.quiet = False
    return True

  def _free_bytes(self) -> int:
    return shutil.disk_usage(self.directory).free

  def _save_error(self, step: int, problem: str) -> CheckpointError:
    """The one-line error for a save of `step` that cannot be done, with the free space and what is kept."""
    earlier = self.latest_step()
    kept = f"the last good checkpoint (step {earlier}) is kept" if earlier is not None else "no checkpoint was saved"
    return CheckpointError(f"cannot save checkpoint step {step} in {self.directory} ({problem}); "
                           f"{self._free_bytes() / 2**20:.1f} MiB free there: free some space or use another "
                           f"--workdir; {kept}")

  def close(self):
    self._manager.close()


def named_leaves(tree) -> dict:
  """`{"state/params/w_h": leaf, ...}`: the leaves of a pytree by their path."""
  def name(key):
    return str(getattr(key, "key", getattr(key, "name", getattr(key, "idx", key))))
  return {"/".join(map(name, path)): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _shapes(tree) -> dict:
  """`{"state/params/w_h": "float32(32, 16)", ...}` for a pytree of arrays (or Python scalars, which
  are saved as arrays) or of orbax's array metadata."""
  def describe(leaf):
    dtype = leaf.dtype if hasattr(leaf, "dtype") else jnp.result_type(leaf)
    return f"{jnp.dtype(dtype).name}{tuple(getattr(leaf, 'shape', ()))}"
  return {name: describe(leaf) for name, leaf in named_leaves(tree).items()}


def _local_value(leaf) -> np.ndarray:
  """A leaf's whole value in this process. An array spread over several processes (the carries of a batch
  split over them) is gathered from all: every process calls this for the same leaves in the same order."""
  if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
    if leaf.is_fully_replicated:
      return np.asarray(leaf.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
  return np.asarray(jnp.asarray(leaf))


def checksums(tree) -> dict:
  """`{leaf name: CRC-32 of its bytes}` for a pytree of arrays (Python scalars as the arrays JAX makes of them,
  which is how they are saved)."""
  return {name: zlib.crc32(_local_value(leaf).reshape(-1).view(np.uint8)) for name, leaf in named_leaves(tree).items()}


def non_finite_leaves(tree) -> list[str]:
  """The names of the floating-point leaves of `tree` holding a NaN or an infinity."""
  return [name for name, leaf in named_leaves(tree).items()  # on the device: one bool per leaf comes back
          if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact) and not bool(jnp.isfinite(leaf).all())]


# The JSON spec of the array TensorStore was opening, which it appends after the system's reason.
_TENSORSTORE_SPEC = re.compile(r"\s*\[tensorstore_spec='.*?'\]")


def one_line(error: Exception, head: int = 250, tail: int = 150) -> str:
  """The root cause of `error` as `Type: message` on one line, its middle cut if longer than `head + tail`
  characters (orbax wraps TensorStore's error, which names the file and the leaf at its start and the system's
  reason at its end, in a repr spanning many lines)."""
  while (error.__cause__ or error.__context__) is not None:
    error = error.__cause__ or error.__context__
  text = _TENSORSTORE_SPEC.sub("", " ".join(f"{type(error).__name__}: {error}".split()))
  return text if len(text) <= head + tail else f"{text[:head]} ... {text[-tail:]}"


def _differences(stored: dict, expected: dict, most: int = 3) -> list[str]:
  """Up to `most` lines naming leaves that are missing, extra or of another shape or dtype."""
  lines = [f"{k}: stored {stored[k]}, this run {expected[k]}"
           for k in expected if k in stored and stored[k] != expected[k]]
  lines += [f"{k}: not in the checkpoint" for k in expected if k not in stored]
  lines += [f"{k}: not in this run" for k in stored if k not in expected]
  return lines[:most] + ([f"and {len(lines) - most} more"] if len(lines) > most else [])
