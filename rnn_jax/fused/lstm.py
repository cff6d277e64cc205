"""The LSTM's fused kernel (with or without peepholes and cell clip; not layer norm): gates i, f, g, o, carry
`(c, h)`.

The forward keeps what the backward reads (i, f, g, o and the incoming `c`); `tanh(c')` is recomputed.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp

from rnn_jax import ops
from rnn_jax.cells.lstm import LSTM, LSTMState, clip_cell
from rnn_jax.fused import kernel


def forward(params, carry, xw, cell_clip: float = 0.0):
  c, h = carry
  i, f, g, o = kernel.gate_inputs(params, xw, h)
  peep = params.get("w_peep")  # [3, H]: c -> i, c -> f, c' -> o (Gers & Schmidhuber 2000)
  if peep is not None:
    i, f = i + c * ops.along_last(peep[0], c), f + c * ops.along_last(peep[1], c)
  i, f, g = ops.fast_sigmoid(i), ops.fast_sigmoid(f), jnp.tanh(g)
  c_new = clip_cell(f * c + i * g, cell_clip)
  if peep is not None:
    o = o + c_new * ops.along_last(peep[2], c_new)
  o = ops.fast_sigmoid(o)
  h_new = o * jnp.tanh(c_new)
  return LSTMState(c_new, h_new), h_new, (i, f, g, o, c)


def backward(params, w_hT, step, dcarry, dh, cell_clip: float = 0.0):
  del w_hT
  i, f, g, o, c_in = step.gates
  c_sum = f * c_in + i * g  # recomputed exactly as in the forward: cheaper than storing
  c_new = clip_cell(c_sum, cell_clip)
  tanh_c = jnp.tanh(c_new)
  dz_o = dh * tanh_c * kernel.dsigmoid(o)
  dc = dcarry.c + dh * o * (1.0 - tanh_c * tanh_c)
  peep = params.get("w_peep")
  if peep is not None:
    dc = dc + dz_o * ops.along_last(peep[2], dc)
  if cell_clip > 0:
    dc = jnp.where(jnp.abs(c_sum) < cell_clip, dc, 0.0)  # no gradient through a clipped unit
  dz_i, dz_f = dc * g * kernel.dsigmoid(i), dc * c_in * kernel.dsigmoid(f)
  dz = jnp.concatenate([dz_i, dz_f, dc * i * (1.0 - g * g), dz_o], axis=-1)
  dc_prev = dc * f
  dextra = {}
  if peep is not None:
    dc_prev = dc_prev + dz_i * ops.along_last(peep[0], dc) + dz_f * ops.along_last(peep[1], dc)
    dextra["w_peep"] = jnp.stack([jnp.sum(dz_i * c_in, axis=0), jnp.sum(dz_f * c_in, axis=0),
                                  jnp.sum(dz_o * c_new, axis=0)])
  return LSTMState(dc_prev, jnp.zeros_like(dh)), dz, dz, None, dextra


def family(cell: LSTM) -> kernel.Family | str:
  if cell.layer_norm:
    return "the fused LSTM has no layer norm"
  return kernel.Family(functools.partial(forward, cell_clip=cell.cell_clip),
                       functools.partial(backward, cell_clip=cell.cell_clip), lambda carry: carry.h,
                       lambda carry, dh: carry._replace(h=carry.h + dh), 4, ("w_peep",) if cell.peepholes else ())


kernel.register(LSTM, family)
