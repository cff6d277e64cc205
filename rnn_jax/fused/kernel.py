"""The fast kernels' protocol: what a cell family hands the fused layer, and the shared step ops.

A family is registered for an exact cell class (a subclass may change `recur`, which a kernel
re-implements): `register(LSTM, lstm_family)`, where `lstm_family(cell)` returns a `Family`, or a
string saying why this cell's options have no kernel. The layer (`rnn_jax.fused.layer`) runs a
family's steps in its hoisted loops:

  forward(params, carry, xw) -> (new_carry, h_BxH, gates): `params` holds `w_h`, its gate blocks
    `w_h_gates`, its transpose `w_hT`, `b` and the family's extra params; `xw` is the step's `x W_x`
    as one `[B, H]` array per gate (bias not yet added). `gates`, a tuple of `[B, H]` arrays, is
    stacked over time and handed back to `backward` at the same step.
  backward(params, w_hT, step, dcarry, dh_BxH) -> (dcarry_prev, d_rec_BxK, dz_BxG, dhw_BxG, dextra):
    `step` is a `Step`; `dcarry` the cotangent of the new carry without its `h` part; `dh` the whole
    cotangent of the new `h` (carry and output). The cotangent of the previous carry is `dcarry_prev`
    plus `d_rec W_h[:, :K]^T` in its `h` part (the loop computes that product, `recurrent_backward`).
    `dz` is the cotangent of `x W_x + b`, `dhw` that of `h W_h` (None where it equals `dz`); `dextra`
    this step's gradients of the family's small extra params, summed over the batch.

Every array a backward step reads is its own buffer (see `recurrent_gates`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax import ops
from rnn_jax.cells import base
from rnn_jax.fused import policy


class Step(NamedTuple):
  h_in: jax.Array        # [B, H] the carry's h before the step
  h_out: jax.Array       # [B, H] the step's output (on valid steps)
  gates: tuple           # what `forward` returned for this step


class Family(NamedTuple):
  forward: Callable
  backward: Callable
  carry_h: Callable          # the h inside a carry
  add_h: Callable            # `(carry, dh) -> carry` with `dh` added to its h
  num_gates: int
  extra_params: tuple        # params besides w_h and b that the recurrence reads (gradients: `dextra`)
  # `(h_in, gates, dz, dhw, dtype) -> dW_h` where the rows `W_h` multiplies are not all `h_in`
  # (GRU); None: dW_h comes out of the one `[x, h_in, 1]` matmul with `dz`.
  w_h_grad: Callable | None = None


_KERNELS: dict[type, Callable[[base.Cell], "Family | str"]] = {}


def register(cell_class: type, family_for: Callable[[base.Cell], "Family | str"]) -> None:
  """Gives cells of exactly `cell_class` a fused kernel: `family_for(cell)` is its `Family`, or why not."""
  _KERNELS[cell_class] = family_for


def family(cell: base.Cell) -> "Family | str":
  """The cell's `Family`, or a string saying why it has none."""
  family_for = _KERNELS.get(type(cell))
  if family_for is None:
    return f"no fused kernel for cell {type(cell).__name__} ({cell.name!r})"
  return family_for(cell)


def gate_blocks(w_KxG: jax.Array, num: int) -> tuple:
  """The `num` column blocks `[K, H]` of a fused gate weight."""
  return tuple(jnp.split(w_KxG, num, axis=-1))


def recurrent_gates(h_BxH: jax.Array, params, gates: slice = slice(None)) -> tuple:
  """`h W_h` as one `[B, H]` buffer per gate (the consecutive `gates` only, if given): one product split
  into gates where `policy.one_recurrent_product_pays` (always on accelerators), else one product per
  gate (XLA:CPU vectorises gate math only over separate buffers), transposed where
  `policy.transposed_recurrence_pays`."""
  blocks = params["w_h_gates"][gates]
  hidden = h_BxH.shape[-1]
  first = (gates.start or 0) * hidden
  if policy.one_recurrent_product_pays(*h_BxH.shape):
    w_h = params["w_h"][:, first:first + len(blocks) * hidden]
    return tuple(jnp.split(mm(h_BxH, w_h), len(blocks), axis=-1))
  if not policy.transposed_recurrence_pays(hidden):
    return tuple(mm(h_BxH, w) for w in blocks)
  zT_GxB = mm_transposed(params["w_hT"][first:first + len(blocks) * hidden], h_BxH)
  return tuple(zT_GxB[g * hidden:(g + 1) * hidden].T for g in range(len(blocks)))


def recurrent_backward(d_rec_BxK: jax.Array, w_h: jax.Array, w_hT: jax.Array, transposed: bool) -> jax.Array:
  """`d_rec W_h[:, :K]^T`, the recurrent part of a backward step's `dh_prev`: `[B, H]`, or `[H, B]`
  if `transposed` (`W_h[:, :K] d_rec^T`, contracting both operands' last axes).
  The backward's counterpart of `recurrent_gates`' transposed product, carried to the next step
  (a transpose right after the product would be folded into it by XLA, which then runs the slow
  kernel again)."""
  width = d_rec_BxK.shape[-1]
  return mm_transposed(w_h[:, :width], d_rec_BxK) if transposed else mm(d_rec_BxK, w_hT[:width])


def mm(a, w):
  """`a @ w` in `w`'s dtype, accumulated in that of `a @ w`: the weights arrive already cast to
  the cell's `matmul_dtype`, so this is the cell's mixed-precision matmul (a plain one without)."""
  return ops.matmul(a, w, w.dtype)


def mm_transposed(w_KxN, a_BxN):
  """`w a^T` (`[K, B]`, contracting both operands' last axes) with `mm`'s dtypes."""
  return jax.lax.dot_general(w_KxN, a_BxN.astype(w_KxN.dtype), (((1,), (1,)), ((), ())),
                             preferred_element_type=jnp.result_type(a_BxN, w_KxN))


def dsigmoid(s):
  """Derivative of the sigmoid in terms of its value."""
  return s * (1.0 - s)


def gate_inputs(params, xw, h):
  """Pre-activations `x W_x + b + h W_h`, one `[B, H]` array per gate."""
  b_gates = jnp.split(params["b"], len(xw))
  return tuple(x + ops.along_last(b, x) + hw for x, b, hw in zip(xw, b_gates, recurrent_gates(h, params)))


def rows(*arrays_TxBxK):
  """`[T*B, sum K]`: the arrays' features side by side, one row per (t, b)."""
  return jnp.concatenate([jnp.reshape(a, (-1, a.shape[-1])) for a in arrays_TxBxK], axis=1)


def weight_grad(lhs_NxK, d_TxBxG, dtype=None):
  """`lhs^T d` over all N = T*B rows, with operands in `dtype` (the cell's `matmul_dtype`) and
  accumulated in at least float32.
  Flattening (t, b) explicitly keeps XLA from transposing `d`, the largest array of the backward,
  and contracting the rows of both operands avoids writing `lhs^T` first."""
  dtype = dtype or jnp.result_type(lhs_NxK, d_TxBxG)
  return ops.contract_rows(lhs_NxK.astype(dtype), d_TxBxG.astype(dtype),
                            jnp.promote_types(d_TxBxG.dtype, jnp.float32))
