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
  optimizer = train.make_optimizer(config.optimizer, 1, 1)
  state = train.create_train_state(params, optimizer, model.initial_carries(params, batch))
  tokens = jax.random.randint(jax.random.PRNGKey(1), (batch, length + 1), 0, vocab)
  data = {"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "reset": jnp.zeros((batch,), bool)}
  m = config.model
  return TrainStep(f"language_modeling/{config_name}", model.loss_fn, state, data, batch * length,
                   f"{m.num_layers}x{m.hidden_size} {m.cell}, vocab {vocab}, {config.optimizer.name}")


TRAIN_STEPS: dict[str, Callable[..., TrainStep]] = {
    "language_modeling": language_modeling,                                   # Zaremba small: 2x200 LSTM
    "language_modeling_medium": functools.partial(language_modeling, config_name="zaremba_medium"),  # 2x650
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

  def compile_fn():
    compiled = jax.jit(step_fn).lower(holder["state"], batch, rng).compile()
    holder["compiled"] = compiled
    memory = compiled.memory_analysis()
    if memory is not None:
      t.extra["temp_bytes"] = memory.temp_size_in_bytes

  t.compile_fn = compile_fn
  return t
