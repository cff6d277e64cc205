"""Whole train steps of the experiments' models, and their data-parallel scaling.

Each entry of `TRAIN_STEPS` builds, for a batch size and a sequence length, the
experiment's own loss and `rnn_jax.train.train_step` (optimizer update included) on
synthetic inputs of the right shapes and returns a `TrainStep`. `timer()` turns it
into a `harness.Timer`; with `num_devices` the batch is split over that many local
devices and the state replicated (`rnn_jax.train.data_parallel`), so the same step
runs data-parallel.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmark import harness
from rnn_jax import train


@dataclasses.dataclass
class TrainStep:
  name: str
  loss_fn: Callable
  state: Any            # rnn_jax.train.TrainState
  batch: Any
  tokens: int           # tokens (time steps x sequences) per step
  description: str


def language_modeling(batch: int, length: int, config_name: str = "zaremba_small", **model) -> TrainStep:
  """The LM experiment: embedding -> stacked cells -> softmax, TBPTT window of `length`.

  `model` overrides fields of the config's `model` (e.g. `hidden_size=64`).
  """
  import importlib  # pylint: disable=g-import-not-at-top
  from experiments.language_modeling import lm  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f"experiments.language_modeling.configs.{config_name}").get_config()
  config.model.update(model)
  vocab = config.data.max_vocab or 10000
  model = lm.make_model(config, vocab)
  params = model.init(jax.random.PRNGKey(0))
  state = train.create_train_state(params, _optimizer(config), model.initial_carries(params, batch))
  tokens = jax.random.randint(jax.random.PRNGKey(1), (batch, length + 1), 0, vocab)
  data = {"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "reset": jnp.zeros((batch,), bool)}
  m = config.model
  return TrainStep(f"language_modeling/{config_name}", model.loss_fn, state, data, batch * length,
                   f"{m.num_layers}x{m.hidden_size} {m.cell}, vocab {vocab}, {config.optimizer.name}")


def _optimizer(config):
  """The config's optimizer; the schedule's length (one step here) does not change the cost of a step."""
  return train.make_optimizer(config.optimizer, 1, 1)


def _supervised(name: str, loss: Callable, params, optimizer, data, tokens: int, description: str) -> TrainStep:
  """A TrainStep for `loss(params, data) -> scalar`: no metrics, no state carried between batches."""

  def loss_fn(params, model_state, data, rng, is_training):
    del rng, is_training
    return loss(params, data), ({}, model_state)

  return TrainStep(name, loss_fn, train.create_train_state(params, optimizer), data, tokens, description)


def handwriting_recognition(batch: int, length: int, **model) -> TrainStep:
  """The handwriting experiment's BLSTM-CTC recogniser on `length` pen points per sequence."""
  from experiments.handwriting import model as hw  # pylint: disable=g-import-not-at-top
  from experiments.handwriting.configs import recognize_synthetic  # pylint: disable=g-import-not-at-top
  from rnn_jax import ctc  # pylint: disable=g-import-not-at-top
  config = recognize_synthetic.get_config()
  config.model.update(model)
  m, classes, label_length = config.model, 11, max(1, length // 20)

  def loss(params, data):
    logits, lengths = hw.recognizer_logits(params, m, data["points"], data["lengths"])
    return jnp.mean(ctc.ctc_loss(logits, lengths, data["labels"], data["label_lengths"]))

  keys = jax.random.split(jax.random.PRNGKey(1), 2)
  data = {"points": jax.random.normal(keys[0], (batch, length, 3)), "lengths": jnp.full((batch,), length),
          "labels": jax.random.randint(keys[1], (batch, label_length), 1, classes),
          "label_lengths": jnp.full((batch,), label_length)}
  params = hw.init_recognizer(jax.random.PRNGKey(0), m, classes)
  return _supervised("handwriting_recognition", loss, params, _optimizer(config), data, batch * length,
                     f"{m.num_layers}x{m.hidden_size} bidirectional {m.cell} + CTC, subsample {m.subsample}")


def handwriting_generation(batch: int, length: int, **model) -> TrainStep:
  """The handwriting experiment's unconditional MDN generator (Graves 2013) on `length` points."""
  from experiments.handwriting import model as hw  # pylint: disable=g-import-not-at-top
  from experiments.handwriting.configs import generate  # pylint: disable=g-import-not-at-top
  config = generate.get_config()
  config.model.update(model)
  m, alphabet = config.model, 1

  def loss(params, data):
    total, count = hw.generator_nll(params, m, alphabet, data["points"], data["lengths"])
    return total / count

  data = {"points": jax.random.normal(jax.random.PRNGKey(1), (batch, length, 3)), "lengths": jnp.full((batch,), length)}
  params = hw.init_generator(jax.random.PRNGKey(0), m, alphabet)
  return _supervised("handwriting_generation", loss, params, _optimizer(config), data, batch * length,
                     f"{m.num_layers}x{m.hidden_size} {m.cell} + {m.num_mixtures}-component MDN")


def translation(batch: int, length: int, **model) -> TrainStep:
  """The translation experiment's attention seq2seq (Tatoeba config); source and target `length` tokens."""
  from experiments.translation import experiment  # pylint: disable=g-import-not-at-top
  from experiments.translation.configs import tatoeba  # pylint: disable=g-import-not-at-top
  config = tatoeba.get_config()
  config.model.update(model)
  vocab = config.data.source_vocab_size
  seq2seq = experiment.make_model(config, vocab, config.data.target_vocab_size)

  def loss_fn(params, model_state, data, rng, is_training):
    loss, metrics = seq2seq.loss(params, data, rng, is_training, config.label_smoothing)
    return loss, (metrics, model_state)

  keys = jax.random.split(jax.random.PRNGKey(1), 2)
  tokens = jax.random.randint(keys[1], (batch, length + 1), 3, config.data.target_vocab_size)
  data = {"source": jax.random.randint(keys[0], (batch, length), 3, vocab), "source_lengths": jnp.full((batch,), length),
          "target_in": tokens[:, :-1], "target_out": tokens[:, 1:], "target_lengths": jnp.full((batch,), length)}
  m = config.model
  state = train.create_train_state(seq2seq.init(jax.random.PRNGKey(0)), _optimizer(config))
  return TrainStep("translation", loss_fn, state, data,
                   2 * batch * length, f"{m.encoder_layers}x{m.encoder_size} encoder, {m.decoder_layers}x"
                   f"{m.decoder_size} decoder ({m.cell}), attention {m.attention}")


def long_range(batch: int, length: int, variant: str = "lstm_clip", task: str = "adding",
               hidden_size: int = 64) -> TrainStep:
  """The long-range experiment's model (a cell and a linear readout) on `length`-step adding or copy sequences."""
  from experiments.long_range import benchmark as long_range_lib  # pylint: disable=g-import-not-at-top
  from rnn_jax import cells  # pylint: disable=g-import-not-at-top
  spec = long_range_lib.VARIANTS[variant]
  cell = cells.get(spec.cell, **dict(spec.options))
  params = long_range_lib.init_params(cell, task, hidden_size, *jax.random.split(jax.random.PRNGKey(0)))
  x, y = long_range_lib.make_batch(task, jax.random.PRNGKey(1), batch, length)
  loss = lambda p, data: long_range_lib.task_loss(cell, task, p, *data)[0]
  return _supervised(f"long_range/{task}", loss, params, long_range_lib.make_optimizer(spec), (x, y), batch * length,
                     f"{variant}: 1x{hidden_size} {spec.cell}, {task} problem")


def clockwork(batch: int, length: int, model: str = "clockwork", hidden_size: int = 40,
              periods: tuple = (1, 2, 4, 8, 16, 32, 64, 128)) -> TrainStep:
  """The clockwork experiment's network (8 modules x 5 units by default) emitting `length`-step waveforms
  from zero inputs; the experiment itself fits one sequence (batch 1)."""
  from experiments.clockwork import waveform  # pylint: disable=g-import-not-at-top
  cell = waveform.make_cell(model, periods)
  params = waveform.init_params(cell, hidden_size, jax.random.PRNGKey(0))
  target_T = waveform.target_waveform(length)
  targets_BxT = jnp.tile(jnp.asarray(target_T)[None], (batch, 1))
  loss = functools.partial(waveform.nmse, cell, variance=float(np.var(target_T)))
  return _supervised(f"clockwork/{model}", loss, params, waveform.make_optimizer(), targets_BxT, batch * length,
                     f"1x{hidden_size} {model}" + (f", periods {list(periods)}" if model == "clockwork" else ""))


def tree(batch: int, length: int, model: str = "tree_lstm", hidden_size: int = 64) -> TrainStep:
  """The tree experiment's recursive network (or its sequential LSTM, `model="lstm"`) on expressions of
  `length` digits (2 length - 1 nodes; tokens counted as nodes), trained on every subexpression."""
  from experiments.tree import arithmetic  # pylint: disable=g-import-not-at-top
  from rnn_jax.data import expressions  # pylint: disable=g-import-not-at-top
  init, logits_fn = arithmetic.make_model(model, hidden_size)
  data = arithmetic.make_batch(expressions.arithmetic_trees(1, batch, length, length), slice(None))
  loss = functools.partial(arithmetic.loss, logits_fn, "all")
  return _supervised(f"tree/{model}", loss, init(jax.random.PRNGKey(0)), arithmetic.make_optimizer(), data,
                     batch * (2 * length - 1), f"{model}, hidden {hidden_size}, expressions of {length} digits")


TRAIN_STEPS: dict[str, Callable[..., TrainStep]] = {
    "language_modeling": language_modeling,                                   # Zaremba small: 2x200 LSTM
    "language_modeling_medium": functools.partial(language_modeling, config_name="zaremba_medium"),  # 2x650
    "handwriting_recognition": handwriting_recognition,
    "handwriting_generation": handwriting_generation,
    "translation": translation,
    "long_range": long_range,                                                 # adding problem, 1x64 LSTM
    "clockwork": clockwork,
    "tree": tree,                                                             # Tree-LSTM, hidden 64
}


def timer(bench: TrainStep, num_devices: int | None = None) -> harness.Timer:
  """A Timer running `bench`'s train step repeatedly, threading the state through."""
  step_fn = functools.partial(train.train_step, bench.loss_fn)
  rng = jax.random.PRNGKey(0)
  flops = harness.jaxpr_matmul_flops(step_fn, bench.state, bench.batch, rng)
  shard_batch, replicate = train.data_parallel(num_devices)
  holder = {"state": replicate(bench.state)}
  batch = shard_batch(bench.batch)

  def step():
    holder["state"], metrics = holder["compiled"](holder["state"], batch, rng)
    jax.block_until_ready((holder["state"], metrics))

  t = harness.Timer(bench.name, step, flops=flops, extra={"description": bench.description})
  t.optimizer_steps = lambda: holder["state"].step  # updates applied so far

  def compile_fn():
    # The state keeps its (replicated) placement: carried model state (e.g. TBPTT carries)
    # would otherwise come back split over the batch and no longer fit the compiled step.
    state_shardings = jax.tree.map(lambda x: x.sharding, holder["state"])
    replicated = jax.tree.leaves(state_shardings)[0]
    compiled = jax.jit(step_fn, out_shardings=(state_shardings, replicated)).lower(
        holder["state"], batch, rng).compile()
    holder["compiled"] = compiled
    memory = compiled.memory_analysis()
    if memory is not None:
      t.extra["temp_bytes"] = memory.temp_size_in_bytes

  t.compile_fn = compile_fn
  return t
