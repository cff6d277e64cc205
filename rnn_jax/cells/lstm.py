"""Long short-term memory cell (Hochreiter & Schmidhuber 1997; Gers et al. 2000).

Gates are fused in one weight, in the order **i, f, g, o** (PyTorch's order):

  z = x W_x + b + h W_h            # [B, 4H]
  i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of the four slices
  c' = f * c + i * g               (clipped to [-cell_clip, cell_clip] if cell_clip > 0)
  h' = o * tanh(c')                 y = h'

Params: `w_x [I, 4H]`, `w_h [H, 4H]` (one orthogonal block per gate), `b [4H]`
(forget slice initialised to `forget_bias`), and optionally
`w_peep [3, H]` (peepholes c->i, c->f, c'->o; Gers & Schmidhuber 2000) and
`ln_x`, `ln_h`, `ln_c` ({"scale", "bias"}; layer norm as in Ba et al. 2016:
on x W_x, on h W_h and on c' before the output tanh).
Carry: `LSTMState(c [..., H], h [..., H])` -- cell state first, as in flax.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax import layers, ops
from rnn_jax.cells import base


class LSTMState(NamedTuple):
  c: jax.Array
  h: jax.Array


def clip_cell(c, cell_clip: float):
  """`c` clipped to `[-cell_clip, cell_clip]`; unchanged for `cell_clip == 0`."""
  return jnp.clip(c, -cell_clip, cell_clip) if cell_clip > 0 else c


@dataclasses.dataclass(frozen=True)
class LSTM(base.Cell):
  """LSTM with fused gates; options: `forget_bias`, `peepholes`, `layer_norm`, `cell_clip` (> 0: the cell
  state is clipped to [-cell_clip, cell_clip] at every step, as TensorFlow's LSTMCell `cell_clip`, so that it
  cannot grow without bound; 0: no clip)."""

  forget_bias: float = 1.0
  peepholes: bool = False
  layer_norm: bool = False
  cell_clip: float = 0.0
  name = "lstm"
  params_match_init = True

  def __post_init__(self):
    super().__post_init__()
    if not self.cell_clip >= 0:
      raise ValueError(f"cell_clip must be >= 0 (0: no clip), got {self.cell_clip}")

  def init(self, key, input_size, hidden_size):
    kx, kh, kp = jax.random.split(key, 3)
    b = jnp.zeros((4 * hidden_size,)).at[hidden_size:2 * hidden_size].set(self.forget_bias)
    params = {
        "w_x": layers.glorot_uniform(kx, (input_size, 4 * hidden_size)),
        "w_h": layers.orthogonal_blocks(kh, hidden_size, 4),
        "b": b,
    }
    if self.peepholes:
      params["w_peep"] = 0.1 * jax.random.normal(kp, (3, hidden_size))
    if self.layer_norm:
      params["ln_x"] = layers.layer_norm_params(4 * hidden_size)
      params["ln_h"] = layers.layer_norm_params(4 * hidden_size)
      params["ln_c"] = layers.layer_norm_params(hidden_size)
    return params

  def initial_carry(self, params, batch_shape):
    shape, dtype = (*batch_shape, self.hidden_size(params)), params["w_h"].dtype
    return LSTMState(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))  # two buffers: both may be donated

  def project(self, params, x):
    xw = self.matmul(x, params["w_x"])
    if self.layer_norm:
      xw = layers.layer_norm(params["ln_x"], xw)
    return xw + ops.along_last(params["b"], xw)

  def recur(self, params, carry, z):
    c, h = carry
    hw = self.matmul(h, params["w_h"])
    if self.layer_norm:
      hw = layers.layer_norm(params["ln_h"], hw)
    i, f, g, o = jnp.split(z + hw, 4, axis=-1)
    if self.peepholes:
      i = i + c * ops.along_last(params["w_peep"][0], c)
      f = f + c * ops.along_last(params["w_peep"][1], c)
    c = clip_cell(ops.fast_sigmoid(f) * c + ops.fast_sigmoid(i) * jnp.tanh(g), self.cell_clip)
    if self.peepholes:
      o = o + c * ops.along_last(params["w_peep"][2], c)
    c_out = layers.layer_norm(params["ln_c"], c) if self.layer_norm else c
    h = ops.fast_sigmoid(o) * jnp.tanh(c_out)
    return LSTMState(c, h), h

  def carry_hidden(self, carry):
    return carry.h
