"""The pure train and eval steps, and the train state they thread.

A task supplies `loss_fn(params, model_state, batch, rng, train) ->
(loss, (metrics, new_model_state))`. `model_state` is whatever the model carries
from one batch to the next (e.g. truncated-BPTT carries); it is part of the state,
so it is checkpointed and restored with the params.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import optax
from flax import struct
from flax.training import train_state

LossFn = Callable[..., Any]


class TrainState(train_state.TrainState):
  """flax TrainState plus `model_state` carried across batches."""
  model_state: Any = struct.field(default=None)


def create_train_state(params, optimizer: optax.GradientTransformation, model_state=None) -> TrainState:
  return TrainState.create(apply_fn=None, params=params, tx=optimizer, model_state=model_state)


def train_step(loss_fn: LossFn, state: TrainState, batch, rng: jax.Array):
  """One optimizer step; pure. The step's RNG is `fold_in(rng, state.step)`."""
  step_rng = jax.random.fold_in(rng, state.step)
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  (loss, (metrics, model_state)), grads = grad_fn(state.params, state.model_state, batch, step_rng, True)
  state = state.apply_gradients(grads=grads, model_state=model_state)
  return state, {"loss": loss, "grad_norm": optax.tree.norm(grads), **metrics}


def eval_step(loss_fn: LossFn, params, model_state, batch):
  """Loss and metrics without dropout; returns `(metrics, new_model_state)`.

  Evaluation threads its own `model_state` (e.g. carries over a validation stream).
  """
  loss, (metrics, model_state) = loss_fn(params, model_state, batch, jax.random.PRNGKey(0), False)
  return {"loss": loss, **metrics}, model_state


def make_train_step(loss_fn: LossFn, donate: bool = True):
  """`train_step` jitted once, with the state's buffers donated."""
  return jax.jit(functools.partial(train_step, loss_fn), donate_argnums=(0,) if donate else ())


def make_eval_step(loss_fn: LossFn):
  return jax.jit(functools.partial(eval_step, loss_fn))


@dataclasses.dataclass
class SyntheticDecode:
  """An experiment's decoding of a test split's worth of synthetic batches (e.g. CTC beam search), timed by
  the benchmark beside its train step."""
  run: Callable[[], Any]   # decodes every batch once
  sequences: int           # sequences decoded by one `run`
  train_steps: int         # steps of the variant's run: the decoding's share of its training time
  description: str


@dataclasses.dataclass
class SyntheticStep:
  """An experiment's whole train step on a synthetic batch of a given shape, for timing.

  Every experiment exposes `synthetic_train_step(batch, length, variant=..., **overrides) -> SyntheticStep`
  from its package; the benchmark harness finds it by the experiment's name.
  """
  name: str
  loss_fn: LossFn      # as a Task's loss_fn
  state: TrainState
  batch: Any
  tokens: int          # time steps x sequences per step
  description: str
  decode: SyntheticDecode | None = None   # the variant's test-time decoding at this shape, if it has one


def supervised_step(name: str, loss: Callable, params, optimizer: optax.GradientTransformation, batch,
                    tokens: int, description: str) -> SyntheticStep:
  """A SyntheticStep for `loss(params, batch) -> scalar`: no metrics, no model state carried."""

  def loss_fn(params, model_state, batch, rng, is_training):
    del rng, is_training
    return loss(params, batch), ({}, model_state)

  return SyntheticStep(name, loss_fn, create_train_state(params, optimizer), batch, tokens, description)
