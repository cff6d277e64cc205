"""Sequence tasks by shape: the generated data, each example as a Task for the generic train loop, the sweep.

  tagger (N -> N): every token of a variable-length sequence (3-20 tokens over 10 symbols) gets the label
    max(x[t-1], x[t], x[t+1]), which needs both neighbours; `tagger_forward` is the forward-only control.
  classifier (N -> 1): which of three symbols is most frequent in a sequence of 5-30 (ties to the smallest).
  decoder (1 -> N): from one vector encoding (start a, step d, length L in 3..10), emit a, a+d, ...,
    a+(L-1)d mod 10, then EOS.

Models: experiments/shapes/model.py. Each example trains in its own sub-workdir `<workdir>/<example>` and is
scored on a fresh held-out set; `run` gathers them in `<workdir>/results.json` and draws `predictions.png`.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import ops, train
from rnn_jax.train import loop
from rnn_jax.train import workdir as workdir_lib
from experiments import command_line
from experiments.shapes import model, plots

EXAMPLES = ("tagger", "tagger_forward", "classifier", "decoder")
DESCRIPTIONS = {"tagger": "N->N tagger (bidirectional LSTM)", "tagger_forward": "N->N tagger (forward LSTM, control)",
                "classifier": "N->1 classifier (GRU)", "decoder": "1->N decoder (LSTM, greedy)"}
SHOWN = {"tagger": 3, "tagger_forward": 3, "classifier": 40, "decoder": 4}  # held-out examples in the plot


def _random_lengths(key, batch, min_length, max_length):
  return jax.random.randint(key, (batch,), min_length, max_length + 1)


@functools.partial(jax.jit, static_argnames=("batch", "max_length"))
def tagging_batch(key, batch=64, max_length=20) -> dict:
  """`x [B, T]`, `labels [B, T]` (the max of the token and its in-sequence neighbours), `lengths [B]`."""
  k_x, k_len = jax.random.split(key)
  lengths_B = _random_lengths(k_len, batch, 3, max_length)
  valid_BxT = ops.mask_from_lengths(lengths_B, max_length)
  x_BxT = jnp.where(valid_BxT, jax.random.randint(k_x, (batch, max_length), 0, model.TAG_VOCAB), 0)
  neighbours_BxT = jnp.maximum(jnp.pad(x_BxT[:, :-1], ((0, 0), (1, 0))), jnp.pad(x_BxT[:, 1:], ((0, 0), (0, 1))))
  return {"x": x_BxT, "labels": jnp.where(valid_BxT, jnp.maximum(x_BxT, neighbours_BxT), 0), "lengths": lengths_B}


@functools.partial(jax.jit, static_argnames=("batch", "max_length"))
def classification_batch(key, batch=64, max_length=30) -> dict:
  """`x [B, T]` (symbols 1..3, 0-padded), `labels [B]` (the most frequent symbol - 1, ties to the smallest),
  `lengths [B]`."""
  k_x, k_len = jax.random.split(key)
  lengths_B = _random_lengths(k_len, batch, 5, max_length)
  valid_BxT = ops.mask_from_lengths(lengths_B, max_length)
  x_BxT = jnp.where(valid_BxT, jax.random.randint(k_x, (batch, max_length), 1, model.CLASSES + 1), 0)
  counts_BxC = jnp.sum(jax.nn.one_hot(x_BxT, model.CLASS_VOCAB)[..., 1:], axis=1)
  return {"x": x_BxT, "labels": jnp.argmax(counts_BxC, axis=-1), "lengths": lengths_B}


@functools.partial(jax.jit, static_argnames=("batch",))
def decoding_batch(key, batch=64) -> dict:
  """`vector [B, 28]` (one-hot start, step and length 3..10), `targets [B, 11]` (start, start + step, ...
  mod 10, then EOS), `inputs` (BOS, then the targets: teacher forcing), `lengths [B]` (with the EOS)."""
  k_a, k_d, k_len = jax.random.split(key, 3)
  start_B, step_B = jax.random.randint(k_a, (batch,), 0, 10), jax.random.randint(k_d, (batch,), 0, 10)
  digits_B = jax.random.randint(k_len, (batch,), 3, model.MAX_OUTPUT)
  vector_BxV = jnp.concatenate([jax.nn.one_hot(start_B, 10), jax.nn.one_hot(step_B, 10),
                                jax.nn.one_hot(digits_B - 3, 8)], axis=-1)
  positions_T = jnp.arange(model.MAX_OUTPUT)
  series_BxT = (start_B[:, None] + positions_T[None, :] * step_B[:, None]) % 10
  targets_BxT = jnp.where(positions_T[None, :] < digits_B[:, None], series_BxT,
                          jnp.where(positions_T[None, :] == digits_B[:, None], model.EOS, 0))
  inputs_BxT = jnp.concatenate([jnp.full((batch, 1), model.BOS), targets_BxT[:, :-1]], axis=1)
  return {"vector": vector_BxV, "inputs": inputs_BxT, "targets": targets_BxT, "lengths": digits_B + 1}


def _valid_tokens(tokens_BxT, lengths_B, rows: int) -> np.ndarray:
  """The first `rows` sequences' tokens within their lengths, one after another."""
  return np.concatenate([np.asarray(tokens_BxT[i, :int(lengths_B[i])]) for i in range(rows)])


def _tagger(example: str, hidden: int):
  """`(init, loss, batch_fn, score)` of a tagger; `score(params, batch) -> (metrics, target, prediction)`."""
  init, logits, loss = model.tagger_fns(hidden, bidirectional=example == "tagger")

  def score(params, batch):
    predicted_BxT = jnp.argmax(logits(params, batch["x"], batch["lengths"]), -1)
    valid_BxT = jnp.arange(batch["x"].shape[1])[None, :] < batch["lengths"][:, None]
    accuracy = jnp.sum((predicted_BxT == batch["labels"]) & valid_BxT) / jnp.sum(valid_BxT)
    shown = SHOWN[example]
    return ({"token_accuracy": float(accuracy)}, _valid_tokens(batch["labels"], batch["lengths"], shown),
            _valid_tokens(predicted_BxT, batch["lengths"], shown))

  return init, loss, tagging_batch, score


def _classifier(hidden: int):
  def score(params, batch):
    predicted_B = jnp.argmax(model.classifier_logits(params, batch["x"], batch["lengths"]), -1)
    labels_B = np.asarray(batch["labels"])
    metrics = {"accuracy": float(jnp.mean(predicted_B == labels_B)),
               "majority_class": float(np.bincount(labels_B).max() / len(labels_B))}
    return metrics, labels_B[:SHOWN["classifier"]], np.asarray(predicted_B[:SHOWN["classifier"]])

  return functools.partial(model.init_classifier, hidden=hidden), model.classifier_loss, classification_batch, score


def _decoder(hidden: int):
  def score(params, batch):
    decoded = model.decode_greedy(params, batch["vector"])
    exact_B = jnp.all(decoded.tokens == batch["targets"], axis=1) & (decoded.lengths == batch["lengths"])
    shown = SHOWN["decoder"]
    return ({"exact_match": float(jnp.mean(exact_B))}, _valid_tokens(batch["targets"], batch["lengths"], shown),
            _valid_tokens(decoded.tokens, batch["lengths"], shown))

  return functools.partial(model.init_decoder, hidden=hidden), model.decoder_loss, decoding_batch, score


def parts(example: str, hidden: int):
  """`(init(key), loss(params, batch), batch_fn(key, batch=...), score)` of `example`."""
  if example in ("tagger", "tagger_forward"):
    return _tagger(example, hidden)
  return _classifier(hidden) if example == "classifier" else _decoder(hidden)


def validate(config) -> None:
  """Fails at start, naming the field, on values the experiment cannot use."""
  unknown = [e for e in config.examples if e not in EXAMPLES]
  if unknown or not config.examples:
    raise ValueError(f"config.examples must name some of {list(EXAMPLES)}, got {list(config.examples)}")
  if config.batch_size <= 0:
    raise ValueError(f"config.batch_size must be > 0, got {config.batch_size}")
  for example in EXAMPLES:
    if config.model.hidden_sizes[example] <= 0:
      raise ValueError(f"config.model.hidden_sizes.{example} must be > 0, got {config.model.hidden_sizes[example]}")
    if config.eval.sizes[example] < SHOWN[example]:
      raise ValueError(f"config.eval.sizes.{example} must be at least {SHOWN[example]} (the examples the plot "
                       f"shows), got {config.eval.sizes[example]}")
  loop.validate_config(config)


def make_task(config, example: str):
  """`(Task, held_out)`: `example` trained on fresh generated batches, each a pure function of the step, and
  scored on the held-out set (`held_out(params) -> (metrics, plotted targets, plotted predictions)`)."""
  init, loss, batch_fn, score = parts(example, config.model.hidden_sizes[example])
  data_key = jax.random.fold_in(jax.random.key(config.seed), EXAMPLES.index(example))

  def loss_fn(params, model_state, batch, rng, is_training):
    del rng, is_training
    return loss(params, batch), ({}, model_state)

  held_out = functools.partial(score, batch=batch_fn(jax.random.key(10_000 + config.seed),
                                                     batch=config.eval.sizes[example]))
  task = train.Task(init=lambda key: (init(key), None), loss_fn=loss_fn,
                    train_batch=lambda step: batch_fn(jax.random.fold_in(data_key, step), batch=config.batch_size),
                    evaluate=lambda params: held_out(params)[0], tokens_per_batch=config.batch_size)
  return task, held_out


def train_example(config, example: str, workdir: str) -> dict:
  """Trains `example` (resuming from `workdir`), scores it on its held-out set and writes its results.json;
  returns the metrics with the plotted targets and predictions."""
  task, score = make_task(config, example)
  command_line.log_model_and_workdir(DESCRIPTIONS[example], task.init, workdir)
  params, finished_before = train.trained_params(task, config, workdir)
  metrics, target, prediction = score(params)
  results = (workdir_lib.read_results(workdir) if finished_before else
             train.write_results(workdir, {"example": example, "num_steps": config.num_steps, **metrics}))
  print(f"{DESCRIPTIONS[example]}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()), flush=True)
  return {**results, "target": target.tolist(), "prediction": prediction.tolist()}


def run(config, workdir: str) -> dict:
  """Every example of `config.examples`, each in `<workdir>/<example>` (a rerun resumes them); writes
  results.json and predictions.png in `workdir` and returns the results."""
  validate(config)
  with workdir_lib.locked(workdir):
    workdir_lib.save_config(config, workdir)
    runs = {e: train_example(config, e, os.path.join(workdir, e)) for e in config.examples}
    plots.predictions({DESCRIPTIONS[e]: r for e, r in runs.items()}, os.path.join(workdir, "predictions.png"))
    keep = lambda r: {k: v for k, v in r.items() if k not in ("target", "prediction", "history", "machine")}
    return train.write_results(workdir, {DESCRIPTIONS[e]: keep(r) for e, r in runs.items()})


def evaluate(config, workdir: str) -> dict:
  """Each example a trained `workdir` holds, scored on a fresh held-out set of `config.eval.sizes` examples
  seeded by 10000 + `config.seed`; the models are the ones the runs saved."""
  scores = {}
  for example in train.load_config(workdir).examples:
    saved = train.load_config(os.path.join(workdir, example))
    saved.seed, saved.eval = config.seed, config.eval
    task, score = make_task(saved, example)
    params = train.restore_params(os.path.join(workdir, example), saved, task.init(jax.random.PRNGKey(0))[0])
    scores[DESCRIPTIONS[example]] = score(params)[0]
    print(f"{DESCRIPTIONS[example]}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores[DESCRIPTIONS[example]].items()))
  return scores


def synthetic_train_step(batch: int, length: int, variant: str = "tagger", **overrides) -> train.SyntheticStep:
  """The example `variant`'s train step on a generated batch: taggers and the classifier read sequences of
  up to `length` tokens; the decoder always emits up to 11 (`length` is ignored). `overrides`: `hidden_size`."""
  from experiments.shapes.configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  hidden = overrides.pop("hidden_size", config.model.hidden_sizes[variant])
  if overrides:
    raise ValueError(f"shapes takes only hidden_size as an override, got {sorted(overrides)}")
  init, loss, batch_fn, _ = parts(variant, hidden)
  key = jax.random.PRNGKey(1)
  data = batch_fn(key, batch=batch) if variant == "decoder" else batch_fn(key, batch=batch, max_length=length)
  steps = model.MAX_OUTPUT if variant == "decoder" else length
  return train.supervised_step(f"shapes/{variant}", loss, init(jax.random.PRNGKey(0)),
                               train.make_optimizer(config.optimizer, 1, 1), data, batch * steps,
                               f"{DESCRIPTIONS[variant]}, hidden {hidden}")
