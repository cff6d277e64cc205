"""The tree experiment: arithmetic expressions -> one `train.Task` per model -> the generic train loop -> test
accuracy by depth.

A sweep over `config.models`: each model trains in its own sub-workdir (`<workdir>/<model>`: config.json,
checkpoints, metrics.jsonl, tensorboard/, results.json); the workdir gathers them in `results.json`, `results.md`
and `accuracy_vs_depth.png`. A rerun resumes an interrupted model and reads finished ones back.
"""

from __future__ import annotations

import functools
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from rnn_jax import train
from rnn_jax.data import expressions
from rnn_jax.train import optim
from rnn_jax.train import workdir as workdir_lib
from experiments import command_line
from experiments.tree import model as model_lib
from experiments.tree import plots


def validate(config) -> None:
  """Fails at start, naming the field, on values the experiment cannot use."""
  unknown = [name for name in config.models if name not in model_lib.MODELS]
  if unknown or not config.models:
    raise ValueError(f"config.models must name some of {model_lib.MODELS}, got {tuple(config.models)}")
  if config.supervise not in model_lib.SUPERVISION:
    raise ValueError(f"config.supervise must be one of {model_lib.SUPERVISION}, got {config.supervise!r}")
  low, high = config.data.train_leaves
  if not 1 <= low <= high <= config.data.test_max_leaves:
    raise ValueError(f"config.data.train_leaves must be (min, max) with 1 <= min <= max <= data.test_max_leaves, "
                     f"got {tuple(config.data.train_leaves)}")
  for field in ("train_examples", "valid_examples", "test_examples", "batch_size"):
    if config.data[field] <= 0:
      raise ValueError(f"config.data.{field} must be > 0, got {config.data[field]}")
  for field in ("tree_hidden", "lstm_hidden"):
    if config.model[field] <= 0:
      raise ValueError(f"config.model.{field} must be > 0, got {config.model[field]}")
  optim.validate(config.optimizer)


def load_data(config) -> dict:
  """`{"train", "valid", "test"}` expression sets (`expressions.arithmetic_trees` outputs)."""
  low, high = config.data.train_leaves
  return {"train": expressions.arithmetic_trees(config.seed, config.data.train_examples, low, high),
          "valid": expressions.arithmetic_trees(config.seed + 2, config.data.valid_examples, low, high),
          "test": expressions.arithmetic_trees(config.seed + 1, config.data.test_examples, low,
                                               config.data.test_max_leaves)}


def make_batch(data: dict, index) -> dict:
  """The examples `index` of an expression set, as the models read them."""
  names = ("trees", "sequence", "sequence_length", "labels", "node_values", "sequence_targets")
  return {name: jax.tree.map(lambda a: a[index], data[name]) for name in names}


def predict_roots(logits_fn, params, data: dict, chunk: int = 1000) -> np.ndarray:
  """The predicted value of every expression of `data`, `chunk` at a time."""
  predict = jax.jit(lambda p, b: jnp.argmax(logits_fn(p, b)[0], axis=-1))
  count = len(data["labels"])
  return np.concatenate([np.asarray(predict(params, make_batch(data, np.arange(i, min(i + chunk, count)))))
                         for i in range(0, count, chunk)])


def build(config, name: str, data: dict) -> tuple[train.Task, Callable]:
  """`(task, logits_fn)` of model `name`; batch `s` is drawn from a generator seeded by `(seed, s)`, so a resumed
  run reads the same batches."""
  init, logits_fn = model_lib.make_model(name, model_lib.hidden_size(name, config.model))
  loss = functools.partial(model_lib.loss, logits_fn, config.supervise)

  def loss_fn(params, model_state, batch, rng, is_training):
    del rng, is_training
    value, metrics = loss(params, batch)
    return value, (metrics, model_state)

  def train_batch(step):
    rows = np.random.default_rng((config.seed, step)).integers(len(data["train"]["labels"]), size=config.data.batch_size)
    return make_batch(data["train"], rows)

  def evaluate(params):
    return {"valid_accuracy": float(np.mean(predict_roots(logits_fn, params, data["valid"]) == data["valid"]["labels"]))}

  task = train.Task(init=lambda key: (init(key), None), loss_fn=loss_fn, train_batch=train_batch, evaluate=evaluate,
                    tokens_per_batch=config.data.batch_size)
  return task, logits_fn


def score(name: str, size: int, logits_fn, params, test: dict) -> dict:
  """Root accuracy on `test`, overall and by depth (keys: the depth as text)."""
  correct, depths = predict_roots(logits_fn, params, test) == test["labels"], test["depth"]
  return {"model": name, "hidden_size": size, "accuracy": float(correct.mean()),
          "num_params": sum(int(np.size(x)) for x in jax.tree.leaves(params)),
          "accuracy_by_depth": {str(d): float(correct[depths == d].mean()) for d in np.unique(depths)},
          "count_by_depth": {str(d): int(np.sum(depths == d)) for d in np.unique(depths)}}


def point_config(config, name: str):
  """The config of the sweep's point that trains model `name` (saved in its sub-workdir)."""
  point = config.copy_and_resolve_references()
  point.models = (name,)
  return point


def train_point(config, name: str, data: dict, workdir: str) -> tuple[dict, bool]:
  """`(results, finished before)` of model `name`, trained in `workdir` (or read back from it when finished)."""
  task, logits_fn = build(config, name, data)
  size = model_lib.hidden_size(name, config.model)
  command_line.log_model_and_workdir(f"{name}, hidden {size}", task.init, workdir)
  try:
    state = train.train_loop(task, config, workdir)
  except train.RunFinished as finished:
    logging.info("%s: finished before; its results are read from %s", name, workdir_lib.results_path(workdir))
    return finished.results, True
  results = score(name, size, logits_fn, jax.device_get(state.params), data["test"])
  print(f"{name}: test accuracy {results['accuracy']:.4f}", flush=True)
  return train.write_results(workdir, results), False


def run(config, workdir: str) -> dict:
  """Trains every model of `config.models` in `<workdir>/<model>` and gathers their test accuracies by depth in
  `workdir` (results.json, results.md, accuracy_vs_depth.png); returns the gathered results."""
  validate(config)
  config.steps_per_epoch = max(config.data.train_examples // config.data.batch_size, 1)
  data = load_data(config)
  points, all_finished = [], True
  for name in config.models:
    results, finished = train_point(point_config(config, name), name, data, os.path.join(workdir, name))
    points.append(results)
    all_finished &= finished
  table = plots.results_table(points)
  finished = workdir_lib.finished_sweep_results(workdir, all_finished, table)
  if finished is not None:
    return finished
  workdir_lib.save_config(config, workdir)
  workdir_lib.write_atomically(os.path.join(workdir, "results.md"), table)
  depth_99 = int(np.percentile(data["train"]["depth"], 99))
  plots.accuracy_by_depth(points, data["test"]["labels"], depth_99, os.path.join(workdir, "accuracy_vs_depth.png"))
  print(table)
  return train.write_results(workdir, {"points": points})


def evaluate_checkpoints(config, workdir: str) -> list[dict]:
  """Test accuracy by depth of each model's latest checkpoint in `<workdir>/<model>` (model options as its run
  saved them; test set from `config`), printed as a table; writes nothing."""
  validate(config)
  test = load_data(config)["test"]
  points = []
  for name in config.models:
    saved = train.load_config(os.path.join(workdir, name))
    size = model_lib.hidden_size(name, saved.model)
    init, logits_fn = model_lib.make_model(name, size)
    params = train.restore_params(os.path.join(workdir, name), saved, init(jax.random.PRNGKey(0)))
    points.append(score(name, size, logits_fn, params, test))
  print(plots.results_table(points))
  return points


def synthetic_train_step(batch: int, length: int, variant: str = "tree_lstm", **overrides) -> train.SyntheticStep:
  """The experiment's train step of model `variant` on `batch` expressions of `length` digits (2 length - 1 nodes;
  tokens counted as nodes), trained on every subexpression; `overrides` set fields of the config's `model`."""
  from experiments.tree.configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.models = (variant,)
  config.model.lock().update(overrides)  # an unknown field: KeyError naming it and the fields
  data = expressions.arithmetic_trees(1, batch, length, length)
  task, _ = build(config, variant, {"train": data, "valid": data})
  params, _ = task.init(jax.random.PRNGKey(0))
  state = train.create_train_state(params, train.make_optimizer(config.optimizer))
  size = model_lib.hidden_size(variant, config.model)
  return train.SyntheticStep(f"tree/{variant}", task.loss_fn, state, make_batch(data, slice(None)),
                             batch * (2 * length - 1), f"{variant}, hidden {size}, expressions of {length} digits")
