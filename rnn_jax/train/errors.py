"""The errors that refuse or stop a run, and how a command line shows them: one line, no traceback."""

from __future__ import annotations

import functools
import os
import sys

import jax

from rnn_jax.data.sources import DataError


class RunError(Exception):
  """A run refused or stopped for a reason its one-line message names, with what to do about it."""

  ends_at_once = False  # the command line exits without the interpreter's exit handlers (see one_line_errors)


class ConfigError(RunError, ValueError):
  """A config field holds a value the run cannot use (the message names the field), or one the workdir's run
  was not made with."""


class NotTrainedError(RunError, FileNotFoundError):
  """The workdir holds no trained run (no config, vocabulary or checkpoint) to evaluate or use."""


class WorkdirLockedError(RunError):
  """Another run holds the workdir."""


class NonFiniteLossError(RunError, FloatingPointError):
  """A metric or the state to save became NaN or infinite; the last good checkpoint is kept."""


class DivergedError(RunError):
  """The loss rose past `config.divergence_factor` times its initial value; the last good checkpoint is kept."""


class PeerLostError(RunError):
  """Another process of a multi-process run stopped (killed, machine lost): this one cannot go on alone."""

  ends_at_once = True  # JAX's shutdown barrier would wait for the lost peer


class MeshError(RunError, ValueError):
  """The devices cannot form the mesh `config.mesh` asks for."""


class Interrupted(RunError):
  """SIGTERM or SIGINT arrived; a checkpoint of the step reached was saved first."""


class RunFinished(Exception):
  """The workdir's run has done all its steps and written its results: nothing to train or recompute.

  `results` holds its `results.json`; the message says so and shows them (without their history).
  """

  def __init__(self, message: str, results: dict):
    super().__init__(message)
    self.results = results


def one_line_errors(main):
  """`main` (an absl `main(argv)`) ending the program with a RunError's or DataError's message on one line, exit
  status 1; a RunFinished's message is printed and the program ends normally."""
  @functools.wraps(main)
  def main_with_one_line_errors(argv):
    try:
      return main(argv)
    except RunFinished as e:
      if jax.process_index() == 0:
        print(e, flush=True)
      return None
    except (RunError, DataError) as e:
      process = f"process {jax.process_index()}: " if jax.process_count() > 1 else ""
      if getattr(e, "ends_at_once", False):
        # The run's files are closed by now; what the interpreter's exit would run waits or reports noise.
        print(f"{process}{type(e).__name__}: {e}", file=sys.stderr, flush=True)
        os._exit(1)  # pylint: disable=protected-access
      sys.exit(f"{process}{type(e).__name__}: {e}")
  return main_with_one_line_errors
