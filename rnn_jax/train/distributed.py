"""Several processes of one run, on JAX's own multi-controller runtime.

  distributed.initialize_from(config)          # first, in every process; a one-process run needs nothing
  layout = mesh.Layout.from_config(config)      # rnn_jax.train.mesh: the devices of all processes
  batch = layout.shard_batch(task.train_batch(step))   # each process keeps its rows of the global batch

One `Mesh` holds the devices of all processes (`rnn_jax.train.mesh`). Every process computes the same
global batch from the step (`Task.train_batch` is a pure function of it) and hands its own rows to
`jax.make_array_from_process_local_data`, so the global batch, the gradient all-reduce XLA inserts,
and therefore the loss curve are the same whatever the number of processes. Logs and files are
written by process 0 (`is_primary`); checkpoints by orbax, in which every process takes part.
"""

from __future__ import annotations

import contextlib

import jax
import ml_collections
from absl import logging
from jax.experimental import multihost_utils


def initialize(coordinator_address: str = "", num_processes: int = 1, process_id: int = 0,
               auto: bool = False, heartbeat_timeout_s: int = 100) -> None:
  """Joins the processes of one run: with `auto`, from the environment (Cloud TPU, SLURM); with
  `num_processes` > 1, at `coordinator_address` ("host:port", reachable by all, served by process 0).
  Nothing for a single process. Must run before any other JAX call of the program. A process that
  stops answering for `heartbeat_timeout_s` ends the others with an error."""
  if not auto and num_processes == 1:
    return
  if not auto and not coordinator_address:
    raise ValueError(f"{num_processes} processes need a coordinator address (host:port of process 0): "
                     "set config.distributed.coordinator_address")
  if not auto and not 0 <= process_id < num_processes:
    raise ValueError(f"config.distributed.process_id must be in [0, {num_processes}), got {process_id}")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU devices' collectives across processes
  if auto:
    jax.distributed.initialize(heartbeat_timeout_seconds=heartbeat_timeout_s)
  else:
    jax.distributed.initialize(coordinator_address, num_processes=num_processes, process_id=process_id,
                               heartbeat_timeout_seconds=heartbeat_timeout_s)


def config() -> ml_collections.ConfigDict:
  """The `config.distributed` fields of a run, defaults for one process; `initialize`'s arguments."""
  c = ml_collections.ConfigDict()
  c.num_processes = 1              # processes in the run (1: nothing to join)
  c.process_id = 0                 # this process's index, 0 .. num_processes - 1
  c.coordinator_address = ""       # host:port served by process 0, reachable by every process
  c.auto = False                   # True: all three from the environment (Cloud TPU, SLURM)
  c.heartbeat_timeout_s = 100      # a process silent this long (killed, machine lost) ends the others
  return c


def initialize_from(run_config) -> None:
  """`initialize` from a run's `config.distributed` (absent: one process); every process but the first
  then logs warnings and errors only."""
  if "distributed" in run_config:
    initialize(**run_config.distributed)
  if not is_primary():
    logging.set_verbosity(logging.WARNING)


@contextlib.contextmanager
def primary_first(name: str):
  """Runs the block in process 0 first, then in the others: for work that fills a shared cache (preparing
  a dataset) that concurrent processes would race on. `name` labels the barrier between the two."""
  if jax.process_count() > 1 and not is_primary():
    multihost_utils.sync_global_devices(f"{name}: process 0 done")
  yield
  if jax.process_count() > 1 and is_primary():
    multihost_utils.sync_global_devices(f"{name}: process 0 done")


_LOST_PEER_SIGNS = ("Gloo", "heartbeat timeout", "CoordinationService", "Connection reset by peer")


def lost_peer(error: Exception) -> bool:
  """Whether `error` is a collective or the coordination service failing because another process of the run
  stopped (its message is the runtime's; these are the signs it gives on CPU and GPU alike)."""
  return jax.process_count() > 1 and any(sign in str(error) for sign in _LOST_PEER_SIGNS)


def is_primary() -> bool:
  """Whether this process writes the run's logs and files (process 0)."""
  return jax.process_index() == 0


def process_rows(batch_size: int) -> slice:
  """This process's rows of a global batch of `batch_size`: a contiguous, equal share."""
  count, index = jax.process_count(), jax.process_index()
  if batch_size % count:
    raise ValueError(f"the global batch of {batch_size} must divide evenly over {count} processes")
  share = batch_size // count
  return slice(index * share, (index + 1) * share)
