"""Clockwork RNN (Koutník, Greff, Gomez & Schmidhuber 2014).

The hidden units are split into `g = len(periods)` equal modules; module i has clock
period `T_i` (ascending, e.g. 1, 2, 4, ...). At step t (counted from 0 in the carry)
only the modules with `t mod T_i == 0` update; the others keep their state:

  h_cand = act(x W_x + b + h (W_h * M))
  h'     = where(t mod T == 0, h_cand, h)       (per unit, T its module's period)   y = h'

`M` makes the recurrence block-triangular: module j feeds module i only when
`T_j >= T_i` (slower to faster, and within a module). The mask is applied in every
step, so masked weights get zero gradients and stay out of the model.

Params: `w_x [I, H]`, `w_h [H, H]` (stored dense; entries outside `M` are zero and
unused), `b [H]`. Carry: `ClockworkState(h [..., H], t [...] int32)`; the step counter
lives in the carry so the cell runs through `rnn_jax.scan.run` unchanged (with
`lengths`, padded steps freeze it with the rest of the carry). Every module's
candidate is computed at every step and inactive ones discarded: static shapes for
`lax.scan`, no saving in FLOPs.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import layers, ops
from rnn_jax.cells import base



class ClockworkState(NamedTuple):
  h: jax.Array
  t: jax.Array


@dataclasses.dataclass(frozen=True)
class Clockwork(base.Cell):
  """Clockwork RNN; `periods` (non-decreasing) has one entry per module, `hidden_size` a multiple of it."""

  periods: tuple = (1, 2, 4, 8, 16, 32, 64, 128)
  activation: str = "tanh"
  name = "clockwork"
  params_match_init = True

  def __post_init__(self):
    super().__post_init__()
    periods = tuple(int(p) for p in self.periods)
    if not periods or min(periods) < 1 or list(periods) != sorted(periods):
      raise ValueError(f"clockwork periods must be positive and non-decreasing, got {self.periods}")
    object.__setattr__(self, "periods", periods)
    if self.activation not in ops.ACTIVATIONS:
      raise ValueError(f"clockwork activation must be one of {sorted(ops.ACTIVATIONS)}, got {self.activation!r}")

  def unit_periods(self, hidden_size: int) -> np.ndarray:
    """`[H]` int32: the clock period of each hidden unit (module-major order)."""
    modules = len(self.periods)
    if hidden_size % modules:
      raise ValueError(f"clockwork hidden_size {hidden_size} is not a multiple of the {modules} modules")
    return np.repeat(np.asarray(self.periods, np.int32), hidden_size // modules)

  def recurrent_mask(self, hidden_size: int) -> np.ndarray:
    """`[H, H]` 0/1 in `h @ W_h` orientation: entry (from j, to i) is 1 iff period_j >= period_i."""
    periods_H = self.unit_periods(hidden_size)
    return (periods_H[:, None] >= periods_H[None, :]).astype(np.float32)

  def num_trainable_params(self, input_size: int, hidden_size: int) -> int:
    """Parameters that can change: `w_x`, `b` and the unmasked part of `w_h`."""
    return input_size * hidden_size + hidden_size + int(self.recurrent_mask(hidden_size).sum())

  def init(self, key, input_size, hidden_size):
    kx, kh = jax.random.split(key)
    mask_HxH = jnp.asarray(self.recurrent_mask(hidden_size))
    fan_in_H = jnp.sum(mask_HxH, axis=0)
    return {
        "w_x": layers.glorot_uniform(kx, (input_size, hidden_size)),
        "w_h": jax.random.normal(kh, (hidden_size, hidden_size)) * mask_HxH / jnp.sqrt(fan_in_H)[None, :],
        "b": jnp.zeros((hidden_size,)),
    }

  def initial_carry(self, params, batch_shape):
    h = jnp.zeros((*batch_shape, self.hidden_size(params)), params["w_h"].dtype)
    return ClockworkState(h, jnp.zeros(tuple(batch_shape), jnp.int32))

  def recur(self, params, carry, z):
    h, t = carry
    hidden = self.hidden_size(params)
    w_h = params["w_h"] * jnp.asarray(self.recurrent_mask(hidden), params["w_h"].dtype)
    candidate = ops.ACTIVATIONS[self.activation](z + self.matmul(h, w_h))
    periods_H = jnp.asarray(self.unit_periods(hidden))
    active = jnp.mod(t[..., None], ops.along_last(periods_H, h)) == 0
    h = jnp.where(active, candidate, h)
    return ClockworkState(h, t + 1), h

  def carry_hidden(self, carry):
    return carry.h
