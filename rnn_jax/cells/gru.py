"""Gated recurrent unit (Cho et al. 2014), in two forms.

Gates fused in the order **r, z, n** (PyTorch's order). With `xr, xz, xn` the
slices of `x W_x + b` and `hr, hz, hn` those of `h W_h`:

  r = sigmoid(xr + hr),  z = sigmoid(xz + hz)
  reset_after=False (Cho et al. 2014):  n = tanh(xn + (r * h) W_hn)
  reset_after=True  (cuDNN / PyTorch):  n = tanh(xn + r * (h W_hn + b_hn))
  h' = (1 - z) * n + z * h           y = h'

Params: `w_x [I, 3H]`, `w_h [H, 3H]` (orthogonal blocks), `b [3H]`, and for
reset_after `b_hn [H]`. Carry: `h [..., H]`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from rnn_jax import layers, ops
from rnn_jax.cells import base


@dataclasses.dataclass(frozen=True)
class GRU(base.Cell):
  """GRU; `reset_after` selects where the reset gate acts (see module doc)."""

  reset_after: bool = True
  name = "gru"
  params_match_init = True

  def init(self, key, input_size, hidden_size):
    kx, kh = jax.random.split(key)
    params = {
        "w_x": layers.glorot_uniform(kx, (input_size, 3 * hidden_size)),
        "w_h": layers.orthogonal_blocks(kh, hidden_size, 3),
        "b": jnp.zeros((3 * hidden_size,)),
    }
    if self.reset_after:
      params["b_hn"] = jnp.zeros((hidden_size,))
    return params

  def recur(self, params, h, z_in):
    hidden = self.hidden_size(params)
    xr, xz, xn = jnp.split(z_in, 3, axis=-1)
    w_h = params["w_h"]
    if self.reset_after:
      hr, hz, hn = jnp.split(self.matmul(h, w_h), 3, axis=-1)
      r = ops.fast_sigmoid(xr + hr)
      n = jnp.tanh(xn + r * (hn + ops.along_last(params["b_hn"], hn)))
    else:
      hr, hz = jnp.split(self.matmul(h, w_h[:, :2 * hidden]), 2, axis=-1)
      r = ops.fast_sigmoid(xr + hr)
      n = jnp.tanh(xn + self.matmul(r * h, w_h[:, 2 * hidden:]))
    z = ops.fast_sigmoid(xz + hz)
    h = n + z * (h - n)
    return h, h
