"""The GRU's fused kernels, both forms: reset after `h W_h` (cuDNN's, with `b_hn`) and before it.

The forward keeps r, u, n (and, reset after, `h W_hn + b_hn`); `h_{t-1}` is read from the outputs.
"""

from __future__ import annotations

import jax.numpy as jnp

from rnn_jax import ops
from rnn_jax.cells.gru import GRU
from rnn_jax.fused import kernel


def reset_after_forward(params, h, xw):
  xr, xz, xn = (x + ops.along_last(b, x) for x, b in zip(xw, jnp.split(params["b"], 3)))
  hr, hz, hn = kernel.recurrent_gates(h, params)
  r = ops.fast_sigmoid(xr + hr)
  u = ops.fast_sigmoid(xz + hz)
  hn_b = hn + ops.along_last(params["b_hn"], hn)
  n = jnp.tanh(xn + r * hn_b)
  h_new = n + u * (h - n)
  return h_new, h_new, (r, u, n, hn_b)


def reset_after_backward(params, w_hT, step, dcarry, dh):
  del params, w_hT, dcarry  # the carry is h itself: all of its cotangent is in dh
  r, u, n, hn_b = step.gates
  da_n = dh * (1.0 - u) * (1.0 - n * n)
  da_r = da_n * hn_b * kernel.dsigmoid(r)
  da_u = dh * (step.h_in - n) * kernel.dsigmoid(u)
  dz = jnp.concatenate([da_r, da_u, da_n], axis=-1)
  dhw_n = da_n * r
  dhw = jnp.concatenate([da_r, da_u, dhw_n], axis=-1)
  return dh * u, dhw, dz, dhw, {"b_hn": jnp.sum(dhw_n, axis=0)}


def reset_after_w_h_grad(h_in_TxBxH, gates, dz_TxBxG, dhw_TxBxG, dtype):
  """`dW_h = h_in^T dhw` (the reset-after GRU, whose `h W_h` has its own cotangent)."""
  del gates, dz_TxBxG
  return kernel.weight_grad(kernel.rows(h_in_TxBxH), dhw_TxBxG, dtype)


def reset_before_forward(params, h, xw):
  xr, xz, xn = (x + ops.along_last(b, x) for x, b in zip(xw, jnp.split(params["b"], 3)))
  hr, hz = kernel.recurrent_gates(h, params, slice(0, 2))
  r = ops.fast_sigmoid(xr + hr)
  u = ops.fast_sigmoid(xz + hz)
  (hn,) = kernel.recurrent_gates(r * h, params, slice(2, 3))
  n = jnp.tanh(xn + hn)
  h_new = n + u * (h - n)
  return h_new, h_new, (r, u, n)


def reset_before_backward(params, w_hT, step, dcarry, dh):
  del params, dcarry
  r, u, n = step.gates
  hidden = dh.shape[-1]
  da_n = dh * (1.0 - u) * (1.0 - n * n)
  d_rh = kernel.mm(da_n, w_hT[2 * hidden:])  # the cotangent of r * h
  da_r = d_rh * step.h_in * kernel.dsigmoid(r)
  da_u = dh * (step.h_in - n) * kernel.dsigmoid(u)
  d_ru = jnp.concatenate([da_r, da_u], axis=-1)  # what the r and z blocks of W_h^T multiply
  return dh * u + d_rh * r, d_ru, jnp.concatenate([d_ru, da_n], axis=-1), None, {}


def reset_before_w_h_grad(h_in_TxBxH, gates, dz_TxBxG, dhw_TxBxG, dtype):
  """`dW_h`: the r and z blocks read `h`, the n block reads `r * h`."""
  del dhw_TxBxG
  hidden = h_in_TxBxH.shape[-1]
  d_rz = kernel.weight_grad(kernel.rows(h_in_TxBxH), dz_TxBxG[..., :2 * hidden], dtype)
  d_n = kernel.weight_grad(kernel.rows(gates[0] * h_in_TxBxH), dz_TxBxG[..., 2 * hidden:], dtype)
  return jnp.concatenate([d_rz, d_n], axis=1)


def family(cell: GRU) -> kernel.Family:
  if cell.reset_after:
    return kernel.Family(reset_after_forward, reset_after_backward, lambda h: h, jnp.add, 3, ("b_hn",),
                         reset_after_w_h_grad)
  return kernel.Family(reset_before_forward, reset_before_backward, lambda h: h, jnp.add, 3, (),
                       reset_before_w_h_grad)


kernel.register(GRU, family)
