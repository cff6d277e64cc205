"""The Elman cell's fused kernel (tanh or relu): the forward keeps nothing but the outputs."""

from __future__ import annotations

import functools

import jax.numpy as jnp

from rnn_jax import ops
from rnn_jax.cells.elman import Elman
from rnn_jax.fused import kernel


def forward(activation, params, h, xw):
  (pre,) = kernel.gate_inputs(params, xw, h)
  h_new = ops.ACTIVATIONS[activation](pre)
  return h_new, h_new, ()


def backward(activation, params, w_hT, step, dcarry, dh):
  del params, w_hT, dcarry
  dz = dh * ops.ACTIVATION_SLOPES[activation](step.h_out)
  return jnp.zeros_like(dh), dz, dz, None, {}


def family(cell: Elman) -> kernel.Family | str:
  if cell.activation not in ops.ACTIVATION_SLOPES:
    return f"no fused Elman for {cell.activation!r}"
  return kernel.Family(functools.partial(forward, cell.activation), functools.partial(backward, cell.activation),
                       lambda h: h, jnp.add, 1, ())


kernel.register(Elman, family)
