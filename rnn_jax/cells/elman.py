"""Elman (vanilla) recurrent cell: `h' = act(x W_x + h W_h + b)`, `y = h'`.

Params: `w_x [I, H]`, `w_h [H, H]`, `b [H]`. Carry: `h [..., H]`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from rnn_jax import layers, ops
from rnn_jax.cells import base

_RECURRENT_INITS = ("orthogonal", "identity", "normal")


@dataclasses.dataclass(frozen=True)
class Elman(base.Cell):
  """Vanilla RNN.

  activation: "tanh" or "relu".
  recurrent_init: "orthogonal", "identity" (IRNN, Le et al. 2015, use with relu)
    or "normal" (N(0, 1/H), the classic init whose gradients vanish).
  """

  activation: str = "tanh"
  recurrent_init: str = "orthogonal"
  name = "elman"
  params_match_init = True

  def __post_init__(self):
    super().__post_init__()
    if self.activation not in ops.ACTIVATIONS:
      raise ValueError(f"Elman activation must be one of {sorted(ops.ACTIVATIONS)}, got {self.activation!r}")
    if self.recurrent_init not in _RECURRENT_INITS:
      raise ValueError(f"Elman recurrent_init must be one of {_RECURRENT_INITS}, got {self.recurrent_init!r}")

  def init(self, key, input_size, hidden_size):
    kx, kh = jax.random.split(key)
    if self.recurrent_init == "identity":
      w_h = jnp.eye(hidden_size)
    elif self.recurrent_init == "normal":
      w_h = jax.random.normal(kh, (hidden_size, hidden_size)) / jnp.sqrt(hidden_size)
    else:
      w_h = layers.orthogonal_blocks(kh, hidden_size, 1)
    return {
        "w_x": layers.glorot_uniform(kx, (input_size, hidden_size)),
        "w_h": w_h,
        "b": jnp.zeros((hidden_size,)),
    }

  def recur(self, params, h, z):
    h = ops.ACTIVATIONS[self.activation](z + self.matmul(h, params["w_h"]))
    return h, h
