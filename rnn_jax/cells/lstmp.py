"""LSTM with a recurrent projection layer (LSTMP; Sak, Senior & Beaufays 2014), as torch.nn.LSTM(proj_size=P).

The cell's output is projected to `P < H` units, and that projection is what recurs, so the
recurrent matrix is `[P, 4H]` instead of `[H, 4H]` (Jozefowicz et al. 2016's large language models):

  z = x W_x + b + r W_h            # [B, 4H]; r [B, P] is the previous step's output
  i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of the four slices (PyTorch's order)
  c' = f * c + i * g
  r' = (o * tanh(c')) W_p           y = r'   [B, P]

Params: `w_x [I, 4H]`, `w_h [P, 4H]`, `b [4H]` (forget slice initialised to `forget_bias`),
`w_p [H, P]`. Carry: `LSTMPState(c [..., H], h [..., P])`.

  cell = cells.get("lstmp", proj_size=1024); params = cell.init(key, input_size, 8192)
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax import layers, ops
from rnn_jax.cells import base


class LSTMPState(NamedTuple):
  c: jax.Array  # [..., H] cell state
  h: jax.Array  # [..., P] projected output


@dataclasses.dataclass(frozen=True)
class LSTMP(base.Cell):
  """LSTM whose output `o * tanh(c)` is projected to `proj_size` units before it recurs."""

  proj_size: int = 0
  forget_bias: float = 1.0
  name = "lstmp"
  params_match_init = True

  def __post_init__(self):
    super().__post_init__()
    if self.proj_size <= 0:
      raise ValueError(f"lstmp needs proj_size > 0 (the projection's units), got {self.proj_size}")

  def init(self, key, input_size, hidden_size):
    kx, kh, kp = jax.random.split(key, 3)
    return {
        "w_x": layers.glorot_uniform(kx, (input_size, 4 * hidden_size)),
        "w_h": jax.nn.initializers.orthogonal()(kh, (self.proj_size, 4 * hidden_size)),
        "b": jnp.zeros((4 * hidden_size,)).at[hidden_size:2 * hidden_size].set(self.forget_bias),
        "w_p": layers.glorot_uniform(kp, (hidden_size, self.proj_size)),
    }

  def initial_carry(self, params, batch_shape):
    dtype = params["w_h"].dtype
    return LSTMPState(jnp.zeros((*batch_shape, self.hidden_size(params)), dtype),
                      jnp.zeros((*batch_shape, self.output_size(params)), dtype))

  def recur(self, params, carry, z):
    c, h = carry
    i, f, g, o = jnp.split(z + self.matmul(h, params["w_h"]), 4, axis=-1)
    c = ops.fast_sigmoid(f) * c + ops.fast_sigmoid(i) * jnp.tanh(g)
    h = self.matmul(ops.fast_sigmoid(o) * jnp.tanh(c), params["w_p"])
    return LSTMPState(c, h), h

  def hidden_size(self, params):
    return params["w_p"].shape[0]

  def output_size(self, params):
    return params["w_p"].shape[1]

  def carry_hidden(self, carry):
    return carry.h
