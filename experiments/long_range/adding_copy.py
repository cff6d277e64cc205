"""The long-range experiment: the adding and copy problems -> one `train.Task` per (task, variant, T) -> the
generic train loop -> held-out error against the memoryless baselines.

A sweep: each point trains in its own sub-workdir (`<workdir>/<task>_<variant>_T<T>`: config.json, checkpoints,
metrics.jsonl, tensorboard/, results.json); the workdir gathers them in `results.json`, `results.md` and
`error_vs_T.png`. A point whose loss turns NaN is recorded as diverged. A rerun resumes an interrupted point and
reads finished (or diverged) ones back.
"""

from __future__ import annotations

import functools
import os

import jax
from absl import logging

from rnn_jax import train
from rnn_jax.data import tasks
from rnn_jax.train import optim
from rnn_jax.train import workdir as workdir_lib
from experiments import command_line
from experiments.long_range import model as model_lib
from experiments.long_range import plots

EVAL_STREAM = 2**31 - 1  # the data key's fold_in index of the held-out sequences (training uses 0, 1, ...)


def validate(config) -> None:
  """Fails at start, naming the field, on values the experiment cannot use."""
  for field, known in (("tasks", model_lib.TASKS), ("variants", tuple(model_lib.VARIANTS))):
    unknown = [name for name in config[field] if name not in known]
    if unknown or not config[field]:
      raise ValueError(f"config.{field} must name some of {known}, got {tuple(config[field])}")
  if not config.lengths or min(config.lengths) < 1:
    raise ValueError(f"config.lengths must be positive integers, got {tuple(config.lengths)}")
  for field in ("batch_size", "eval_size"):
    if config.data[field] <= 0:
      raise ValueError(f"config.data.{field} must be > 0, got {config.data[field]}")
  if config.model.hidden_size <= 0:
    raise ValueError(f"config.model.hidden_size must be > 0, got {config.model.hidden_size}")
  optim.validate(config.optimizer)


def baseline(task: str, length: int) -> float:
  """Memoryless score: adding MSE 1/6; copy cross-entropy per step 10 log 8 / (T + 20)."""
  return tasks.ADDING_BASELINE_MSE if task == "adding" else tasks.copy_baseline_cross_entropy(length)


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def make_batch(task: str, key: jax.Array, batch_size: int, length: int):
  """`(x_BxTxI, targets)`: adding `[B, T, 2]` inputs and `[B]` sums; copy one-hot `[B, T, 10]` and `[B, T]`."""
  if task == "adding":
    return tasks.adding_problem(key, batch_size, length)
  x_BxL, y_BxL = tasks.copy_task(key, batch_size, length)
  return jax.nn.one_hot(x_BxL, model_lib.COPY_VOCAB), y_BxL


def point_config(config, task: str, variant: str, length: int):
  """The config of the sweep's point (task, variant, T), with the variant's gradient clip (saved in its
  sub-workdir)."""
  point = config.copy_and_resolve_references()
  point.tasks, point.variants, point.lengths = (task,), (variant,), (length,)
  point.optimizer.clip_norm = model_lib.VARIANTS[variant].clip_norm
  return point


def build(config) -> train.Task:
  """The Task of a point's config: batch `s` is drawn with `fold_in(data key, s)`, so a resumed run reads the same
  batches; `evaluate` scores `data.eval_size` held-out sequences."""
  (task,), (variant,), (length,) = config.tasks, config.variants, config.lengths
  cell = model_lib.make_cell(variant)
  data_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)

  def loss_fn(params, model_state, batch, rng, is_training):
    del rng, is_training
    loss, metrics = model_lib.task_loss(cell, task, params, *batch)
    return loss, (metrics, model_state)

  held_out = make_batch(task, jax.random.fold_in(data_key, EVAL_STREAM), config.data.eval_size, length)
  held_out_loss = jax.jit(lambda params: model_lib.task_loss(cell, task, params, *held_out))

  def evaluate(params):
    error, metrics = held_out_loss(params)
    return {"valid_error": float(error), **{f"valid_{k}": float(v) for k, v in metrics.items()}}

  return train.Task(init=lambda key: (model_lib.init_params(cell, task, config.model.hidden_size, key), None),
                    loss_fn=loss_fn, evaluate=evaluate, tokens_per_batch=config.data.batch_size * length,
                    train_batch=lambda step: make_batch(task, jax.random.fold_in(data_key, step),
                                                        config.data.batch_size, length))


def train_point(config, workdir: str) -> tuple[dict, bool]:
  """`(results, finished before)` of a point's config, trained in `workdir` (or read back when finished)."""
  (task,), (variant,), (length,) = config.tasks, config.variants, config.lengths
  previous = workdir_lib.read_results(workdir)
  if previous is not None and previous["diverged"]:
    return previous, True
  key = {"task": task, "variant": variant, "length": length, "baseline": baseline(task, length)}
  built = build(config)
  command_line.log_model_and_workdir(f"{variant}, {task} problem, T={length}", built.init, workdir)
  try:
    train.train_loop(built, config, workdir)
  except train.RunFinished as finished:
    logging.info("%s: finished before; its results are read from %s", workdir, workdir_lib.results_path(workdir))
    return finished.results, True
  except train.NonFiniteLossError as e:
    logging.warning("%s diverged: %s", workdir, e)
    return train.write_results(workdir, {**key, "error": None, "diverged": True}), False
  final = [line for line in train.read_metrics(workdir) if line.get("evaluation")][-1]
  scores = {name[len("valid_"):]: value for name, value in final.items() if name.startswith("valid_")}
  print(f"{task}/{variant}/T={length}: error {scores['error']:.4f} (baseline {key['baseline']:.4f})", flush=True)
  return train.write_results(workdir, {**key, **scores, "diverged": False}), False


def run(config, workdir: str) -> dict:
  """Trains every (task, variant, T) of the config in `<workdir>/<task>_<variant>_T<T>` and gathers their errors
  in `workdir` (results.json, results.md, error_vs_T.png); returns the gathered results."""
  validate(config)
  points, all_finished = [], True
  for task in config.tasks:
    for length in config.lengths:
      for variant in config.variants:
        results, finished = train_point(point_config(config, task, variant, length),
                                        os.path.join(workdir, f"{task}_{variant}_T{length}"))
        points.append(results)
        all_finished &= finished
  table = plots.results_table(points, baseline)
  finished = workdir_lib.finished_sweep_results(workdir, all_finished, table)
  if finished is not None:
    return finished
  workdir_lib.save_config(config, workdir)
  workdir_lib.write_atomically(os.path.join(workdir, "results.md"), table)
  plots.error_vs_length(points, baseline, os.path.join(workdir, "error_vs_T.png"))
  print(table)
  return train.write_results(workdir, {"points": points})


def synthetic_train_step(batch: int, length: int, variant: str = "lstm_clip", task: str = "adding",
                         **overrides) -> train.SyntheticStep:
  """The experiment's train step of `variant` on `batch` `length`-step sequences of `task` (adding or copy);
  `overrides` set fields of the config's `model` (e.g. `hidden_size=128`)."""
  from experiments.long_range.configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.model.lock().update(overrides)  # an unknown field: KeyError naming it and the fields
  config.data.batch_size, config.data.eval_size = batch, 1
  config = point_config(config, task, variant, length)
  built = build(config)
  params, _ = built.init(jax.random.PRNGKey(0))
  state = train.create_train_state(params, train.make_optimizer(config.optimizer))
  return train.SyntheticStep(f"long_range/{task}", built.loss_fn, state, built.train_batch(0), batch * length,
                             f"{variant}: 1x{config.model.hidden_size} {model_lib.VARIANTS[variant].cell}, "
                             f"{task} problem")
