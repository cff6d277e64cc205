"""The one train loop: data -> pure train step -> metrics, checkpoints, logs.

It knows nothing about text, strokes or languages: a `Task` supplies the model's
init, its loss and its batches. Devices (`mesh.Layout`, from `config.mesh`): the batch is split
over the `data` axis of a `data x model` mesh of all devices of all processes, and the params
over its `model` axis as `Task.param_axes` names them (by default `model=1`: data parallelism,
the state replicated, the gradient all-reduced by XLA). Several processes (`distributed.initialize`)
run the same loop in lockstep; process 0 alone holds the workdir's lock and writes its files and
logs, and every process takes part in checkpoints and evaluations.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import threading
import time
from typing import Any, Callable

import jax
import numpy as np
from absl import logging

from rnn_jax.train import distributed, hparams, mesh, optim
from rnn_jax.train import workdir as workdir_lib
from rnn_jax.train.checkpoint import Checkpointer, non_finite_leaves, one_line
from rnn_jax.train.errors import (ConfigError, DivergedError, Interrupted, NonFiniteLossError, NotTrainedError,
                                  PeerLostError, RunFinished)
from rnn_jax.train.step import LossFn, create_train_state


@dataclasses.dataclass
class Task:
  """What the loop needs from an experiment.

  init: `key -> (params, model_state)`.
  loss_fn: `(params, model_state, batch, rng, train) -> (loss, (metrics, model_state))`.
  train_batch: `step -> batch` (a pytree of arrays with the batch on axis 0), a pure
    function of the global step so that resuming at step s resumes the data at s.
  evaluate: optional `params -> {name: float}`, run every `eval_every` steps and at the end.
  tokens_per_batch: for tokens/s in the logs.
  files: `{file name: text or bytes}` the run keeps in its workdir (e.g. a vocabulary), written with
    `config.json` once the workdir's checkpoint is found compatible, so that a refused run changes nothing.
  param_axes: optional `params -> tree of PartitionSpec` naming each param's logical axes (e.g.
    `P("vocab", "embed")`), which `config.mesh.rules` map to the mesh; None: params replicated.
  """
  init: Callable[[jax.Array], tuple[Any, Any]]
  loss_fn: LossFn
  train_batch: Callable[[int], Any]
  evaluate: Callable[[Any], dict] | None = None
  tokens_per_batch: int = 0
  files: dict[str, str | bytes] = dataclasses.field(default_factory=dict)
  param_axes: Callable[[Any], Any] | None = None


def validate_config(config) -> None:
  for field in ("num_steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints", "steps_per_epoch"):
    if not (isinstance(config[field], int) and config[field] > 0):
      raise ConfigError(f"config.{field} must be a positive integer, got {config[field]!r}")
  if not (math.isfinite(config.divergence_factor) and (config.divergence_factor == 0 or config.divergence_factor > 1)):
    raise ConfigError(f"config.divergence_factor must be above 1 (or 0: never stop), got {config.divergence_factor}")
  optim.validate(config.optimizer)


def restore_params(workdir: str, config, params, model_state=None):
  """The params of the latest checkpoint in `workdir`, restored into the structure of `params` (for
  evaluation or inference; the optimizer state is rebuilt from the run's `config` to match, then dropped)."""
  checkpoints = Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True)
  try:
    if checkpoints.latest_step() is None:
      raise NotTrainedError(f"no checkpoint in {checkpoints.directory}: train first with the same --workdir")
    optimizer = optim.make_optimizer(config.optimizer, config.steps_per_epoch, config.num_steps)
    state, _, _ = checkpoints.restore_latest(create_train_state(params, optimizer, model_state),
                                             jax.random.PRNGKey(0))
  finally:
    checkpoints.close()
  return state.params


def trained_params(task: Task, config, workdir: str):
  """`(params, finished_before)`: trains `task` in `workdir` (resuming), or, where a run finished there
  already, restores its params without training (for a sweep's points, which a rerun should not redo)."""
  try:
    return train_loop(task, config, workdir).params, False
  except RunFinished:
    params, model_state = task.init(jax.random.PRNGKey(config.seed))  # the structure to restore into
    return restore_params(workdir, config, params, model_state), True


def _last_good(checkpoints: Checkpointer) -> str:
  step = checkpoints.latest_step()
  if step is None:
    return "No checkpoint had been saved yet, so the workdir holds no trained state."
  return f"The last good checkpoint (step {step}) in {checkpoints.directory} is kept; rerunning resumes from it."


def _check_metrics(step: int, metrics: dict, loss_limit: float | None, checkpoints: Checkpointer) -> None:
  """Raises NonFiniteLossError for a NaN/inf metric, DivergedError for a loss above `loss_limit`."""
  for name in sorted(metrics, key=lambda k: k != "loss"):  # name the loss first when it is the culprit
    value = metrics[name]
    if not math.isfinite(float(value)):
      raise NonFiniteLossError(f"non-finite {name} = {value} at step {step}; stopping. {_last_good(checkpoints)}")
  if loss_limit is not None and metrics["loss"] > loss_limit:
    raise DivergedError(
        f"loss {float(metrics['loss']):.4g} at step {step} is above {loss_limit:.4g} (config.divergence_factor x "
        f"|initial loss|): the run diverged (a lower config.optimizer.learning_rate may help); stopping. "
        f"{_last_good(checkpoints)}")


def _loss_limit(config, metadata: dict) -> float | None:
  """The loss past which the run has diverged, once its initial loss is known."""
  if not config.divergence_factor or "initial_loss" not in metadata:
    return None
  return config.divergence_factor * abs(metadata["initial_loss"])


def _save(checkpoints: Checkpointer, step: int, state, rng, metadata: dict) -> None:
  """Saves `state` unless a NaN/inf is in it (then NonFiniteLossError: the last good checkpoint is kept)."""
  poisoned = non_finite_leaves(state)
  if poisoned:
    raise NonFiniteLossError(f"non-finite values in {poisoned[0]} after step {step}; stopping without saving "
                             f"them. {_last_good(checkpoints)}")
  if checkpoints.save(step, state, rng, metadata):
    logging.info("Saved checkpoint step %d in %s", step, checkpoints.directory)


def _evaluation_due(step: int, config) -> bool:
  return step % config.eval_every == 0 or step == config.num_steps


def _evaluate(task: Task, state, step: int, writer: workdir_lib.MetricWriter) -> None:
  eval_metrics = task.evaluate(state.params)
  writer.write(step, eval_metrics, evaluation=True)
  logging.info("step %d eval  %s", step, "  ".join(f"{k} {v:.4f}" for k, v in eval_metrics.items()))


def _log_window(writer: workdir_lib.MetricWriter, fetched: list, seconds: float, config, tokens_per_batch: int):
  """Writes the means of a window of `(step, metrics)` and logs them with the speed and ETA."""
  done = fetched[-1][0]
  steps_per_s = len(fetched) / seconds
  means = {k: float(np.mean([m[k] for _, m in fetched])) for k in fetched[-1][1]}
  means.update(steps_per_s=steps_per_s, tokens_per_s=steps_per_s * tokens_per_batch)
  writer.write(done, means)
  logging.info("step %d/%d  %s  %.2f steps/s  %.0f tokens/s  ETA %.1f min", done, config.num_steps,
               "  ".join(f"{k} {v:.4f}" for k, v in means.items() if k not in ("steps_per_s", "tokens_per_s")),
               steps_per_s, means["tokens_per_s"], (config.num_steps - done) / steps_per_s / 60)


@contextlib.contextmanager
def _stop_requests():
  """Yields a list to which SIGTERM and SIGINT append their name instead of ending the program (a second
  signal raises KeyboardInterrupt). Outside the main thread, signals cannot be caught: the list stays empty."""
  received = []
  if threading.current_thread() is not threading.main_thread():
    yield received
    return

  def request_stop(signum, frame):
    if received:
      raise KeyboardInterrupt
    received.append(signal.Signals(signum).name)
    logging.warning("%s: saving a checkpoint after this step, then exiting (send it again to exit at once, "
                    "without saving)", received[0])

  previous = {signum: signal.signal(signum, request_stop) for signum in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield received
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)


def _raise_if_finished(checkpoints: Checkpointer, config, workdir: str) -> None:
  """RunFinished when `workdir` holds the checkpoint of step `config.num_steps` and the run's `results.json`."""
  results = workdir_lib.read_results(workdir)
  if results is not None and checkpoints.latest_step() == config.num_steps:
    raise RunFinished(workdir_lib.finished_message(workdir, config, results), results)


def train_loop(task: Task, config, workdir: str, num_devices: int | None = None):
  """Trains `task` for `config.num_steps` steps, resuming from `workdir` if it holds a checkpoint.

  Returns the final `TrainState`. Metrics go to absl logging, TensorBoard and `workdir/metrics.jsonl`. The
  workdir is locked for the run; `config.json` and `task.files` are written once its checkpoint is found
  compatible. SIGTERM/SIGINT save a checkpoint and raise `Interrupted`. A finished run (the checkpoint of the
  last step and `results.json`, which the experiment writes when it ends) raises `RunFinished` before any
  compute, holding its results; a run that trains further removes its stale `results.json` first.
  """
  validate_config(config)
  primary = distributed.is_primary()
  lock = workdir_lib.locked(workdir) if primary else contextlib.nullcontext()
  with lock, _stop_requests() as stop_requests:
    checkpoints = Checkpointer(os.path.join(workdir, "checkpoints"), config.keep_checkpoints)
    try:
      _raise_if_finished(checkpoints, config, workdir)
      rng, init_rng = jax.random.split(jax.random.PRNGKey(config.seed))
      optimizer = optim.make_optimizer(config.optimizer, config.steps_per_epoch, config.num_steps)
      layout = mesh.Layout.from_config(config, num_devices)

      def make_state(key):
        params, model_state = task.init(key)
        return create_train_state(params, optimizer, model_state)

      state = layout.init_state(make_state, init_rng, task.param_axes)  # restored into its shards
      state, rng, metadata = checkpoints.restore_latest(state, layout.replicate(rng))
      if primary:
        if int(state.step) < config.num_steps:
          workdir_lib.remove_results(workdir)
        workdir_lib.save_config(config, workdir)
        for name, body in task.files.items():
          workdir_lib.write_atomically(os.path.join(workdir, name), body)
        hparams.write(config, os.path.join(workdir, "tensorboard"))
      writer = workdir_lib.MetricWriter(workdir, int(state.step), write=primary)
      try:
        return _train(task, config, layout, state, rng, metadata, checkpoints, writer, stop_requests)
      except Exception as e:  # pylint: disable=broad-except
        if not distributed.lost_peer(e):
          raise
        raise PeerLostError(f"another process of this run stopped ({one_line(e)}). "
                            f"{_last_good(checkpoints)} Rerun every process with the same command.") from None
      finally:
        writer.close()
    finally:
      checkpoints.close()


def _train(task: Task, config, layout: mesh.Layout, state, rng, metadata: dict, checkpoints: Checkpointer,
           writer: workdir_lib.MetricWriter, stop_requests: list):
  """The steps from `state.step` to `config.num_steps`, with logs, checkpoints and evaluations."""
  first_step = int(state.step)
  if first_step and task.evaluate is not None and _evaluation_due(first_step, config) \
      and not writer.evaluated(first_step):
    _evaluate(task, state, first_step, writer)  # due when the previous run ended between checkpoint and evaluation
  train_step = layout.train_step(task.loss_fn, state)
  logging.info("Training steps %d..%d on %d %s device(s) in %d process(es), mesh data %d x model %d", first_step,
               config.num_steps, layout.mesh.size, jax.default_backend(), jax.process_count(),
               layout.shape["data"], layout.shape["model"])
  pending, window_start = [], time.perf_counter()
  for step in range(first_step, config.num_steps):
    state, metrics = train_step(state, layout.shard_batch(task.train_batch(step)), rng)
    pending.append((step + 1, metrics))
    done, stopping = step + 1, bool(stop_requests)
    saving = done % config.checkpoint_every == 0 or done == config.num_steps or stopping
    if done % config.log_every == 0 or saving:
      # Fetching metrics synchronises with the device: do it at boundaries, not every step.
      fetched = jax.device_get(pending)
      if fetched[0][0] == 1:
        metadata["initial_loss"] = float(fetched[0][1]["loss"])
      for logged_step, m in fetched:
        _check_metrics(logged_step, m, _loss_limit(config, metadata), checkpoints)
      _log_window(writer, fetched, time.perf_counter() - window_start, config, task.tokens_per_batch)
      pending, window_start = [], time.perf_counter()
    if saving:  # before evaluating, so a failed evaluation loses no steps
      _save(checkpoints, done, state, rng, metadata)
    if stopping:
      raise Interrupted(f"{stop_requests[0]} received: saved checkpoint step {done} in {checkpoints.directory}; "
                        "rerun the same command to resume")
    if task.evaluate is not None and _evaluation_due(done, config):
      _evaluate(task, state, done, writer)
  return state
