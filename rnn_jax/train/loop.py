"""The one train loop: data -> pure train step -> metrics, checkpoints, logs.

It knows nothing about text, strokes or languages: a `Task` supplies the model's
init, its loss and its batches. Data parallelism: the batch is sharded over a
1-D `Mesh` of all devices along its leading axis and the state is replicated; XLA
inserts the gradient all-reduce. On several hosts, call `jax.distributed.initialize()`
before anything else and give each host its slice of the batch (see README).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tensorboardX import SummaryWriter

from rnn_jax.train import hparams, optim
from rnn_jax.train.checkpoint import Checkpointer
from rnn_jax.train.step import LossFn, create_train_state, make_train_step


class NonFiniteLossError(FloatingPointError):
  """A metric became NaN or infinite; the last good checkpoint is kept."""


@dataclasses.dataclass
class Task:
  """What the loop needs from an experiment.

  init: `key -> (params, model_state)`.
  loss_fn: `(params, model_state, batch, rng, train) -> (loss, (metrics, model_state))`.
  train_batch: `step -> batch` (a pytree of arrays with the batch on axis 0), a pure
    function of the global step so that resuming at step s resumes the data at s.
  evaluate: optional `params -> {name: float}`, run every `eval_every` steps and at the end.
  tokens_per_batch: for tokens/s in the logs.
  """
  init: Callable[[jax.Array], tuple[Any, Any]]
  loss_fn: LossFn
  train_batch: Callable[[int], Any]
  evaluate: Callable[[Any], dict] | None = None
  tokens_per_batch: int = 0


def validate_config(config) -> None:
  for field in ("num_steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints", "steps_per_epoch"):
    if not (isinstance(config[field], int) and config[field] > 0):
      raise ValueError(f"config.{field} must be a positive integer, got {config[field]!r}")
  optim.validate(config.optimizer)


class MetricWriter:
  """Writes scalars to TensorBoard (tensorboardX) and to `metrics.jsonl` (one JSON object per line,
  with the step and the wall-clock `time` in seconds since the epoch)."""

  def __init__(self, workdir: str, resume_step: int):
    self._path = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(self._path):  # drop lines past the checkpoint we resume from
      with open(self._path) as f:
        kept = [line for line in f if json.loads(line)["step"] <= resume_step]
      with open(self._path, "w") as f:
        f.writelines(kept)
    self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, metrics: dict) -> None:
    for name, value in metrics.items():
      self._tb.add_scalar(name, value, step)
    with open(self._path, "a") as f:
      f.write(json.dumps({"step": step, "time": time.time(), **{k: float(v) for k, v in metrics.items()}}) + "\n")

  def close(self):
    self._tb.close()


def _config_path(workdir: str) -> str:
  return os.path.join(workdir, "config.json")


def save_config(config, workdir: str) -> None:
  """Writes the run's full config (derived fields included) as `workdir/config.json`."""
  os.makedirs(workdir, exist_ok=True)
  with open(_config_path(workdir), "w") as f:
    f.write(config.to_json_best_effort(indent=2))


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a training run saved in `workdir` (tuples come back as lists)."""
  path = _config_path(workdir)
  if not os.path.exists(path):
    raise FileNotFoundError(f"no config.json in {workdir}: train with this --workdir first")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def restore_params(workdir: str, config, params, model_state=None):
  """The params of the latest checkpoint in `workdir`, restored into the structure of `params` (for
  evaluation or inference; the optimizer state is rebuilt from the run's `config` to match, then dropped)."""
  checkpoints = Checkpointer(os.path.join(workdir, "checkpoints"))
  try:
    if checkpoints.latest_step() is None:
      raise FileNotFoundError(f"no checkpoint in {checkpoints.directory}: train first with the same --workdir")
    optimizer = optim.make_optimizer(config.optimizer, config.steps_per_epoch, config.num_steps)
    state, _ = checkpoints.restore_latest(create_train_state(params, optimizer, model_state), jax.random.PRNGKey(0))
  finally:
    checkpoints.close()
  return state.params


def read_metrics(workdir: str) -> list[dict]:
  """The metrics a run wrote: one dict per write; training lines hold "loss", evaluation lines `<split>_*`."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def data_parallel(num_devices: int | None = None):
  """`(shard_batch, replicate)` placing batches split over devices and state replicated."""
  devices = jax.devices()[:num_devices]
  mesh = Mesh(np.asarray(devices), ("data",))
  batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
  replicated = NamedSharding(mesh, PartitionSpec())

  def shard_batch(batch):
    def put(x):
      if np.ndim(x) == 0 or x.shape[0] % len(devices):
        raise ValueError(f"batch leading dimension {np.shape(x)} must divide evenly over {len(devices)} devices")
      return jax.device_put(x, batch_sharding)
    return jax.tree.map(put, batch)

  return shard_batch, lambda tree: jax.device_put(tree, replicated)


def _check_finite(step: int, metrics: dict, checkpoints: Checkpointer) -> None:
  for name in sorted(metrics, key=lambda k: k != "loss"):  # name the loss first when it is the culprit
    value = metrics[name]
    if not math.isfinite(float(value)):
      raise NonFiniteLossError(
          f"non-finite {name} = {value} at step {step}; stopping. The last good checkpoint "
          f"(step {checkpoints.latest_step()}) in {checkpoints.directory} is kept.")


def train_loop(task: Task, config, workdir: str, num_devices: int | None = None):
  """Trains `task` for `config.num_steps` steps, resuming from `workdir` if it holds a checkpoint.

  Returns the final `TrainState`. Metrics go to absl logging, TensorBoard and
  `workdir/metrics.jsonl`.
  """
  validate_config(config)
  os.makedirs(workdir, exist_ok=True)
  rng, init_rng = jax.random.split(jax.random.PRNGKey(config.seed))
  params, model_state = task.init(init_rng)
  optimizer = optim.make_optimizer(config.optimizer, config.steps_per_epoch, config.num_steps)
  state = create_train_state(params, optimizer, model_state)
  checkpoints = Checkpointer(os.path.join(workdir, "checkpoints"), config.keep_checkpoints, config.checkpoint_every)
  state, rng = checkpoints.restore_latest(state, rng)
  shard_batch, replicate = data_parallel(num_devices)
  state = replicate(state)
  first_step = int(state.step)
  writer = MetricWriter(workdir, first_step)
  hparams.write(config, os.path.join(workdir, "tensorboard"))
  train_step = make_train_step(task.loss_fn)
  logging.info("Training steps %d..%d on %d %s device(s)", first_step, config.num_steps,
               len(jax.devices()[:num_devices]), jax.default_backend())

  pending, window_start = [], time.perf_counter()
  for step in range(first_step, config.num_steps):
    state, metrics = train_step(state, shard_batch(task.train_batch(step)), rng)
    pending.append((step + 1, metrics))
    done = step + 1
    last = done == config.num_steps
    if done % config.log_every == 0 or done % config.checkpoint_every == 0 or last:
      # Fetching metrics synchronises with the device: do it at boundaries, not every step.
      for logged_step, m in jax.device_get(pending):
        _check_finite(logged_step, m, checkpoints)
      elapsed = time.perf_counter() - window_start
      steps_per_s = len(pending) / elapsed
      means = {k: float(np.mean([m[k] for _, m in pending])) for k in pending[-1][1]}
      means.update(steps_per_s=steps_per_s, tokens_per_s=steps_per_s * task.tokens_per_batch)
      writer.write(done, means)
      eta_min = (config.num_steps - done) / steps_per_s / 60
      logging.info("step %d/%d  %s  %.2f steps/s  %.0f tokens/s  ETA %.1f min", done, config.num_steps,
                   "  ".join(f"{k} {v:.4f}" for k, v in means.items() if k not in ("steps_per_s", "tokens_per_s")),
                   steps_per_s, means["tokens_per_s"], eta_min)
      pending, window_start = [], time.perf_counter()
    if checkpoints.save(done, state, rng, force=last):  # before evaluating, so a failed evaluation loses no steps
      logging.info("Saved checkpoint step %d in %s", done, checkpoints.directory)
    if task.evaluate is not None and (done % config.eval_every == 0 or last):
      eval_metrics = task.evaluate(state.params)
      writer.write(done, eval_metrics)
      logging.info("step %d eval  %s", done, "  ".join(f"{k} {v:.4f}" for k, v in eval_metrics.items()))
  writer.close()
  checkpoints.close()
  return state
