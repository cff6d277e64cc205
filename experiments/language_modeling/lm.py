"""The language-modeling experiment: corpus -> streams -> Task for the generic train loop.

Truncated BPTT over a contiguous stream: the training text is cut into
`batch_size` parallel streams; batch `s` is window `s mod steps_per_epoch` of
`bptt` steps; the final carries of one window are the initial carries of the next
(kept in the train state, so they are checkpointed), reset at every epoch start and, with probability
`data.reset_probability`, at any window of any stream, so that training also starts from the zero state that
evaluation starts every stream from.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from rnn_jax import cells, train
from rnn_jax.data import text
from rnn_jax.train import optim
from experiments import command_line
from experiments.language_modeling.model import LanguageModel


def validate(config) -> None:
  """Fails at start, naming the field, on values the experiment cannot use."""
  if config.data.level not in ("char", "word"):
    raise ValueError(f"config.data.level must be 'char' or 'word', got {config.data.level!r}")
  cells.from_config(config.model)
  optim.validate(config.optimizer)
  for field in ("batch_size", "bptt", "eval_batch_size"):
    if config.data[field] <= 0:
      raise ValueError(f"config.data.{field} must be > 0, got {config.data[field]}")
  for field in ("hidden_size", "num_layers", "embed_size"):
    if config.model[field] <= 0:
      raise ValueError(f"config.model.{field} must be > 0, got {config.model[field]}")
  if not 0.0 <= config.model.dropout < 1.0:
    raise ValueError(f"config.model.dropout must be in [0, 1), got {config.model.dropout}")
  output_size = config.model.get("proj_size") or config.model.hidden_size
  if config.model.tied and config.model.embed_size != output_size:
    raise ValueError(f"config.model.tied needs embed_size == hidden_size (proj_size with a projection), got "
                     f"{config.model.embed_size} and {output_size}")
  if config.num_steps < 0:
    raise ValueError(f"config.num_steps must be >= 0 (0: num_epochs passes), got {config.num_steps}")
  if not (config.num_steps or config.num_epochs > 0):
    raise ValueError(f"config.num_epochs must be > 0 when config.num_steps is 0, got {config.num_epochs}")
  if config.model.cell_clip and config.model.cell != "lstm":
    raise ValueError(f"config.model.cell_clip clips an LSTM's cell state: set it to 0 for cell "
                     f"{config.model.cell!r}, got {config.model.cell_clip}")
  if config.model.forget_bias != 1.0 and config.model.cell not in ("lstm", "lstmp"):
    raise ValueError(f"config.model.forget_bias starts an LSTM's forget gate: set it to 1 for cell "
                     f"{config.model.cell!r}, got {config.model.forget_bias}")
  if not config.model.cell_clip >= 0:
    raise ValueError(f"config.model.cell_clip must be >= 0 (0: no clip), got {config.model.cell_clip}")
  if not 0.0 <= config.data.reset_probability < 1.0:
    raise ValueError(f"config.data.reset_probability must be in [0, 1), got {config.data.reset_probability}")
  unknown = [split for split in config.eval_splits if split not in text.SPLITS]
  if unknown or not config.eval_splits:
    raise ValueError(f"config.eval_splits must name some of {text.SPLITS}, got {tuple(config.eval_splits)}")
  fractions = tuple(config.data.fractions)
  if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
    raise ValueError(f"config.data.fractions must be three positive fractions (train, valid, test) summing to 1, "
                     f"got {fractions}")
  if config.sample.length < 0:
    raise ValueError(f"config.sample.length must be >= 0, got {config.sample.length}")
  if config.sample.temperature < 0:
    raise ValueError(f"config.sample.temperature must be >= 0 (0: the most likely token), "
                     f"got {config.sample.temperature}")


def _windows(ids, batch_size: int, bptt: int, what: str):
  """`[B, N]` streams of `ids` with at least one `bptt` window, or a ValueError naming `what`."""
  if len(ids) // batch_size < bptt + 1:
    raise ValueError(f"{what} of {len(ids)} tokens is too short for {batch_size} streams of at least "
                     f"{bptt} + 1 tokens (config.data.bptt): use a larger corpus or smaller values")
  return text.batchify(ids, batch_size)


def stream_resets(step: int, steps_per_epoch: int, batch_size: int, probability: float, seed: int) -> np.ndarray:
  """`[batch_size]` bool: which streams restart from a zero carry at training `step` -- all at an epoch's first
  window, and each with `probability` at any other. A function of `(seed, step)` only, so a resumed run draws
  the same resets."""
  draws_B = np.random.default_rng([seed, step]).random(batch_size)
  return (draws_B < probability) | (step % steps_per_epoch == 0)


def _load_splits(data_config) -> dict:
  return text.load_text_splits(data_config.path, data_config.tfds_dir or None, tuple(data_config.fractions),
                               download=data_config.download, encoding=data_config.get("encoding", "utf-8"))


VOCAB_FILE = "vocab.json"
CORPUS_FILE = "corpus.json"  # the training text the workdir's run trains on (path, size, hash)


class CorpusChangedError(train.RunError):
  """The workdir's vocabulary was built from another corpus than the one the config names."""


def _vocab_path(workdir: str) -> str:
  return os.path.join(workdir, VOCAB_FILE)


def saved_vocabulary(workdir: str) -> text.Vocabulary | None:
  """The vocabulary a run saved in `workdir`, or None."""
  path = _vocab_path(workdir)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return text.Vocabulary.from_json(f.read())


def corpus_identity(path: str, train_text: str) -> dict:
  """`{"path", "train_characters", "train_sha256"}`: what tells one training text from another."""
  return {"path": path, "train_characters": len(train_text),
          "train_sha256": hashlib.sha256(train_text.encode()).hexdigest()}


def _check_same_corpus(workdir: str, identity: dict, new_corpus_ok: bool) -> None:
  """Raises CorpusChangedError if the workdir's vocabulary was built from another training text."""
  path = os.path.join(workdir, CORPUS_FILE)
  if new_corpus_ok or not os.path.exists(path):
    return
  with open(path) as f:
    saved = json.load(f)
  if saved["train_sha256"] != identity["train_sha256"]:
    raise CorpusChangedError(
        f"{_vocab_path(workdir)} was built from another corpus ({saved['path']}, {saved['train_characters']} "
        f"characters of training text) than config.data.path={identity['path']} ({identity['train_characters']}): "
        "use another --workdir, or --config.data.new_corpus_ok=True to go on with the saved vocabulary")


def load_corpus(config, workdir: str):
  """`(vocab, {split: ids}, corpus identity)`; the vocabulary is the one saved in the workdir if it was built from
  this corpus (a resumed run reuses it, so token ids keep their meaning), else built on train (`train_loop`
  saves it, as `Task.files`)."""
  splits = _load_splits(config.data)
  identity = corpus_identity(config.data.path, splits["train"])
  vocab = saved_vocabulary(workdir)
  if vocab is None:
    vocab = text.Vocabulary.build(splits["train"], config.data.level, config.data.max_vocab)
  elif vocab.level != config.data.level:
    raise train.ConfigError(f"{_vocab_path(workdir)} is a {vocab.level}-level vocabulary but config.data.level "
                            f"is {config.data.level!r}: use another --workdir")
  else:
    _check_same_corpus(workdir, identity, config.data.new_corpus_ok)
  return vocab, {name: vocab.encode(body) for name, body in splits.items()}, identity


def make_model(config, vocab_size: int) -> LanguageModel:
  m = config.model
  return LanguageModel(vocab_size=vocab_size, cell=m.cell, hidden_size=m.hidden_size, num_layers=m.num_layers,
                       embed_size=m.embed_size, dropout=m.dropout, variational_dropout=m.variational_dropout,
                       tied=m.tied, residual=m.residual, init_scale=m.init_scale, unroll=m.unroll, remat=m.remat,
                       matmul_dtype=m.matmul_dtype, proj_size=m.get("proj_size", 0), cell_clip=m.get("cell_clip", 0.0),
                       embed_init_std=m.get("embed_init_std", 1.0), forget_bias=m.get("forget_bias", 1.0))


def evaluate_streams(model: LanguageModel, eval_step, params, streams, bptt: int) -> np.ndarray:
  """`[B]` mean NLL (nats/token) of each of a split's `[B, N]` streams, each read from a zero state and
  carrying it across windows as in training. Streams are equally long: the split's NLL is their mean."""
  batch_size = streams.shape[0]
  carries = model.initial_carries(params, batch_size)
  reset = np.zeros((batch_size,), bool)
  total_B = np.zeros((batch_size,))
  windows = text.num_windows(streams, bptt)
  for index in range(windows):
    inputs, targets = text.window(streams, index, bptt)
    metrics, carries = eval_step(params, carries, {"inputs": inputs, "targets": targets, "reset": reset})
    total_B += np.asarray(metrics["stream_nll_B"], np.float64)
  return total_B / windows


def stream_summary(split: str, nll_B: np.ndarray, streams) -> str:
  """One line on how a split's streams spread: median, range, and where the worst one starts."""
  worst = int(np.argmax(nll_B))
  return (f"{split}: {len(nll_B)} streams, nats/token median {np.median(nll_B):.3f}, min {nll_B.min():.3f}, "
          f"max {nll_B[worst]:.3f} (stream {worst}, starting at token {worst * streams.shape[1]})")


def build(config, workdir: str):
  """`(task, model, vocab, ids)` for a config; fills `config.steps_per_epoch`, and `config.num_steps` from
  `config.num_epochs` when it is 0."""
  validate(config)
  train.Layout.from_config(config)  # the devices can form config.mesh, before the corpus is read
  with train.distributed.primary_first("corpus"):  # process 0 prepares the dataset the others then read
    vocab, ids, identity = load_corpus(config, workdir)
  model = make_model(config, len(vocab))
  streams = _windows(ids["train"], config.data.batch_size, config.data.bptt, "the training split")
  steps_per_epoch = text.num_windows(streams, config.data.bptt)
  config.steps_per_epoch = steps_per_epoch
  if not config.num_steps:
    config.num_steps = config.num_epochs * steps_per_epoch
  if config.eval_every <= 0:
    config.eval_every = steps_per_epoch
  evaluate = make_evaluate(model, config, ids)

  def train_batch(step):
    index = step % steps_per_epoch
    inputs, targets = text.window(streams, index, config.data.bptt)
    return {"inputs": inputs, "targets": targets,
            "reset": stream_resets(step, steps_per_epoch, config.data.batch_size, config.data.reset_probability,
                                   config.seed)}

  def init(key):
    params = model.init(key)
    return params, model.initial_carries(params, config.data.batch_size)

  task = train.Task(init=init, loss_fn=model.loss_fn, train_batch=train_batch, evaluate=evaluate,
                    tokens_per_batch=config.data.batch_size * config.data.bptt,
                    files={VOCAB_FILE: vocab.to_json(), CORPUS_FILE: json.dumps(identity, indent=2)},
                    param_axes=model.param_axes)
  logging.info("corpus: %s; vocab %d (%s level); train %d tokens, %d steps/epoch, %d steps",
               config.data.path, len(vocab), config.data.level, len(ids["train"]), steps_per_epoch, config.num_steps)
  return task, model, vocab, ids


def perplexity(nll: float) -> float:
  """`exp(nll)`; infinite for a loss too large for a float (a diverged model)."""
  try:
    return math.exp(nll)
  except OverflowError:
    return math.inf


def make_evaluate(model: LanguageModel, config, ids, report: Callable[[str], None] = logging.info
                  ) -> Callable[[Any], dict]:
  """`params -> {"<split>_loss", "<split>_max_stream_loss", "<split>_perplexity", "<split>_bpc" (char level)}`
  over `config.eval_splits`; logs each split's spread over its streams (`stream_summary`).
  Checks now, naming the field, that each split fills `config.data.eval_batch_size` streams."""
  eval_step = train.make_eval_step(model.loss_fn)
  streams = {split: _windows(ids[split], config.data.eval_batch_size, config.data.bptt,
                             f"the {split} split (config.data.eval_batch_size streams)")
             for split in config.eval_splits}

  def evaluate(params):
    out = {}
    for split in config.eval_splits:
      nll_B = evaluate_streams(model, eval_step, params, streams[split], config.data.bptt)
      nll = float(nll_B.mean())
      out[f"{split}_loss"] = nll
      out[f"{split}_max_stream_loss"] = float(nll_B.max())
      report(stream_summary(split, nll_B, streams[split]))
      out[f"{split}_perplexity"] = perplexity(nll)
      if config.data.level == "char":
        out[f"{split}_bpc"] = nll / math.log(2)
    return out

  return evaluate


def run(config, workdir: str):
  """Trains (resuming if `workdir` holds a checkpoint), evaluates, prints a sample; writes `results.json` (the last
  evaluation and the sample) and returns the final train state."""
  task, model, vocab, _ = build(config, workdir)
  m = config.model
  command_line.log_model_and_workdir(f"{m.num_layers} x {m.hidden_size} {m.cell}", task.init, workdir)
  state = train.train_loop(task, config, workdir)
  sample = sample_text(model, vocab, state.params, config.sample.prime, config.sample.length,
                       config.sample.temperature, config.seed)
  print(sample)
  last_evaluation = [line for line in train.read_metrics(workdir) if line.get("evaluation")][-1:]
  results = {"num_steps": config.num_steps, **{name: value for line in last_evaluation for name, value in line.items()
                                               if name not in ("step", "time", "evaluation")}, "sample": sample}
  if train.distributed.is_primary():
    train.write_results(workdir, results)
  return state


def restore(workdir: str):
  """`(model, vocab, params, saved_config)` of the latest checkpoint in `workdir`, with the model its run saved
  (`config.json`, `vocab.json`); reads no corpus and writes nothing."""
  saved = train.load_config(workdir)
  vocab = saved_vocabulary(workdir)
  if vocab is None:
    raise train.NotTrainedError(f"no vocab.json in {workdir}: train with this --workdir first")
  model = make_model(saved, len(vocab))
  params = model.init(jax.random.PRNGKey(0))
  params = train.restore_params(workdir, saved, params, model.initial_carries(params, saved.data.batch_size))
  return model, vocab, params, saved


@functools.partial(jax.jit, static_argnames=("model", "length"))
def _sample(model, params, prime, length, temperature, rng):
  return model.sample(params, prime, length, temperature, rng)


def sample_text(model, vocab, params, prime: str, length: int, temperature: float, seed: int = 0) -> str:
  """The prime followed by `length` sampled tokens."""
  prime_ids = vocab.encode(prime) if prime else np.zeros((1,), np.int32)
  if len(prime_ids) == 0:
    raise ValueError("the prime string must contain at least one token")
  ids = _sample(model, params, jnp.asarray(prime_ids), length, jnp.float32(temperature), jax.random.PRNGKey(seed))
  sep = "" if vocab.level == "char" else " "
  return prime + sep + vocab.decode(np.asarray(ids))


def evaluate_checkpoint(config, workdir: str) -> dict:
  """Metrics of the latest checkpoint in `workdir` on `config.eval_splits` (evaluated with
  `config.data.eval_batch_size` streams; corpus and model as the run saved them), printed as JSON."""
  model, vocab, params, saved = restore(workdir)
  saved.eval_splits, saved.data.eval_batch_size = tuple(config.eval_splits), config.data.eval_batch_size
  validate(saved)
  ids = {name: vocab.encode(body) for name, body in _load_splits(saved.data).items()}
  metrics = make_evaluate(model, saved, ids, report=print)(params)
  print(json.dumps(metrics, indent=2))
  return metrics


def synthetic_vocab_size(config) -> int:
  """The vocabulary of a config's synthetic train step: its bound (`data.max_vocab`), else 10,000 words or, at
  character level, Tiny Shakespeare's 66 tokens (65 characters and the unknown token)."""
  return config.data.max_vocab or (66 if config.data.level == "char" else 10000)


def synthetic_train_step(batch: int, length: int, variant: str = "zaremba_small", **overrides) -> train.SyntheticStep:
  """The train step of config `variant` (e.g. zaremba_medium) on random tokens: `batch` streams, a TBPTT
  window of `length` tokens, `synthetic_vocab_size` tokens. `overrides` set fields of the config's `model`
  (e.g. `hidden_size=64`)."""
  config = command_line.named_config("experiments.language_modeling.configs", variant, overrides)
  vocab = synthetic_vocab_size(config)
  model = make_model(config, vocab)
  params = model.init(jax.random.PRNGKey(0))
  # The schedule's length does not change the cost of a step.
  state = train.create_train_state(params, train.make_optimizer(config.optimizer), model.initial_carries(params, batch))
  tokens_Bx1T = jax.random.randint(jax.random.PRNGKey(1), (batch, length + 1), 0, vocab)
  data = {"inputs": tokens_Bx1T[:, :-1], "targets": tokens_Bx1T[:, 1:], "reset": jnp.zeros((batch,), bool)}
  m = config.model
  return train.SyntheticStep(f"language_modeling/{variant}", model.loss_fn, state, data, batch * length,
                             f"{m.num_layers}x{m.hidden_size} {m.cell}, vocab {vocab}, {config.optimizer.name}")
