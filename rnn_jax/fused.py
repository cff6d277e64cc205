"""Hand-written backward passes for the LSTM (peepholes too), GRU and Elman cells.

  carry, ys_TxBxH = fused.run(cell, params, xs_TxBxI, carry, lengths=lengths_B, reverse=False)

One layer, one direction, the hoisted layout: the input projection `xs W_x` is one
matmul over all steps before the loop, then a `lax.scan` runs the recurrence. The
whole layer is a `jax.custom_vjp`. Values and gradients equal those of
`rnn_jax.scan.run(..., hoist=True, backward="autodiff")` up to float rounding
(tests/test_fused.py); `scan.run(..., backward="fused" or "auto")` routes here.

Why, and what XLA does (HLO dumps and CPU profiles; figures in experiments/benchmark):
  * Autodiff of `lax.scan` transposes the step, so every backward step adds its
    `h_{t-1}^T dz_t` into a `[H, G]` weight-gradient accumulator carried through the
    loop (a small matmul plus a read-modify-write of `G*H` floats per step, on the
    critical path). Here the backward scan carries only `dh` (and `dc`) and stacks
    `dz_t`; afterwards ONE `[I+H+1, T*B] x [T*B, G]` matmul gives dW_x, dW_h and db
    (the bias through a row of ones) and one more gives dx. Flattening (t, b) by hand
    matters: an einsum over both made XLA transpose `dz`, the largest array, twice;
    so does contracting the rows of `[x, h, 1]` directly (`_weight_grad`) rather than
    writing its transpose first.
  * XLA:CPU emits scalar code for a loop fusion that reads two or more slices of one
    buffer, which is what `jnp.split(x W + h W_h, 4)` followed by sigmoid/tanh is: the
    gate math took ~80 us per step at B=32, H=256 and ~1 ms at B=128, as long as the
    recurrent matmul. (An optimization barrier does not help: XLA:CPU drops it before
    fusion.) So on CPU every gate has its own buffer: the projection is one matmul per
    gate, `h W_h` one matmul per gate (`_recurrent_gates`), and the residuals a backward
    step reads are separate stacks (the LSTM keeps its incoming `c` rather than reading
    two steps of one stack). With that, the gate math is vectorised (8x faster).
  * XLA:CPU's kernel for the small-batch `[B, H] x [H, G]` product runs at ~45 % of the
    ceiling at H=1024, the transposed `[G, H] x [H, B]` near it: there the forward computes
    `W_h^T h^T` and transposes each gate's block of rows back, and the backward computes
    `W_h dz^T` and carries it to the next step (`transposed_recurrence_pays`).
  * The forward keeps only what the backward needs (LSTM: i, f, g, o, c_in; GRU: r, u,
    n, and h W_hn + b_hn after the reset; Elman: nothing but the outputs); `tanh(c)` and `h_{t-1}` are
    recomputed or read from the outputs. A stacked scan output costs a zero-fill, a write
    and a read of `T*B*H` floats, which is memory-bound on CPU: the LSTM's gates (the GRU's
    from B*H = 16384) are written over their own projections instead
    (`gates_overwrite_projections_pays`), so only the LSTM's `c` is such an output.
  * The bias is added inside the step, where the gate math already reads `x W_x`,
    not in a separate pass over the `[T, B, G]` projection.
  * Tried and measured slower or no faster on the 2-core CPU (experiments/benchmark/README.md):
    a feature-major carry and residuals (faster per-step matmuls, but slower than this
    layout at H <= 512, and at H=1024 no faster than the transposed products: 673 against
    668 ms LSTM fwd+bwd at 32x1024x100, separate runs),
    per-step input projections, unroll 2, and a chunked backward (XLA:CPU ran a matmul
    and an independent scan one after the other, so per-chunk weight gradients would
    not hide behind the loop).

Supported: LSTM with or without peepholes (not layer norm), GRU (both `reset_after` forms),
Elman (tanh, relu); lengths masking and reverse exactly as in `scan.run`; the cell's
`matmul_dtype` (every matmul, forward and backward, reads bfloat16 operands and
accumulates in float32; the weight gradients come out in the params' dtype); remat
(`run(..., remat=True)`: checkpointed chunks of about sqrt(T) steps, `_run_checkpointed`).
`unsupported_reason` names what is not (other cells or options). No
forward-mode derivative (`jax.jvp`) through a custom VJP: use backward="autodiff".
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax.cells import base
from rnn_jax.cells.elman import Elman
from rnn_jax.cells.gru import GRU
from rnn_jax.cells.lstm import LSTM, LSTMState


def unsupported_reason(cell: base.Cell) -> str | None:
  """None if `run` handles `cell`, else why not."""
  # Exact types: a subclass may change `recur`, which these kernels re-implement.
  if type(cell) is LSTM:  # pylint: disable=unidiomatic-typecheck
    if cell.layer_norm:
      return "the fused LSTM has no layer norm"
    return None
  if type(cell) is GRU:  # pylint: disable=unidiomatic-typecheck
    return None
  if type(cell) is Elman:  # pylint: disable=unidiomatic-typecheck
    return None if cell.activation in _ELMAN_DERIVATIVES else f"no fused Elman for {cell.activation!r}"
  return f"no fused kernel for cell {type(cell).__name__} ({cell.name!r})"


def use_by_default(cell: base.Cell) -> bool:
  """Whether `scan.run(backward="auto")` takes the fused path: whenever it is supported.

  On the 2-core CPU (experiments/benchmark/README.md) fused fwd+bwd took 1/1.02 to 1/1.7
  of the time of autodiff (with the runner's CPU layout) for LSTM and GRU at every shape
  measured (Elman: 2x faster at B=32, 0.93x at B=128; on the 2-core Intel host, 2026-11-30, Elman
  1.06x at 128x256x100, 1.12x at 128x1024x30, 1.3-2.3x at B=32); for undifferentiated calls see
  `per_step_forward_pays`. On GPU/TPU it turns T small weight-gradient matmuls into one
  large one; not yet measured there.
  """
  return unsupported_reason(cell) is None


def per_step_forward_pays(cell: base.Cell, batch: int, hidden: int) -> bool:
  """Whether an undifferentiated call should run the runner's per-step layout (the input
  projection inside each step) rather than this module's hoisted forward, where the runner
  does not hoist (`scan.hoist_by_default`: CPU, H < 512).

  For the LSTM: 2-core CPU, forward only, time-major, B=32, H=256 (2026-11-23): per-step
  108.9-110.6 ms against 136.9 hoisted at T=1000, 11.2 against 13.0 at T=100 (flax's
  nn.RNN, also per-step: 107.6 / 11.4); level at B=128 (37.4 / 38.7). For the GRU and Elman
  the hoisted forward was the faster at B=32 (GRU 9.9 vs 12.3 ms at T=100, 102.6 vs 122.8 at
  T=1000; Elman 3.3 vs 4.2, 37.5 vs 42.3) and within 10 % at B=128: they keep it. Where
  `one_recurrent_product_pays` (B >= 128) the LSTM keeps it too. Gradients always take the
  hoisted forward, which stores what the hand-written backward reads.
  """
  return isinstance(cell, LSTM) and not one_recurrent_product_pays(batch, hidden)


def _gate_blocks(w_KxG: jax.Array, num: int) -> tuple:
  """The `num` column blocks `[K, H]` of a fused gate weight."""
  return tuple(jnp.split(w_KxG, num, axis=-1))


def transposed_recurrence_pays(hidden: int) -> bool:
  """Whether on CPU the forward computes `h W_h` as `(W_h^T h^T)^T` (`_recurrent_gates`) and the
  backward `dz W_h^T` as `(W_h dz^T)^T` (`_recurrent_backward`).

  XLA:CPU's kernel for a per-step `[B, H] x [H, G]` product with a small batch is slow at
  large H: 2-core Intel Xeon (AVX-512), jaxlib 0.10.2, 100 steps of `[32, 1024] x [1024, 4096]`
  took 201 ms (134 GFLOP/s, 45 % of a 2048^3 matmul) against 97 ms for `[4096, 1024] x [1024, 32]`
  with the gate rows transposed back. In the fused layers (2026-11-29, 7 alternating rounds):
  forward 1.46-1.49x and fwd+bwd 1.13-1.15x faster for the LSTM and GRU at B=32, H=1024 (1.09-1.22x
  at B=8, 1.00-1.02x at B=128), within 10 % either way at H=512-768, and 0.89-0.98x at H=256.
  Transposing the whole product back and splitting its columns was slower (148.6 ms for the
  product alone); feature-major residuals and carries also sped up the backward but cost at
  H <= 512 (experiments/benchmark/README.md). Measured on that host only; to compare on another
  CPU, replace this function (e.g. `lambda hidden: False`) before the first trace.
  """
  return hidden >= 1024


def one_recurrent_product_pays(batch: int, hidden: int) -> bool:
  """Whether on CPU `_recurrent_gates` computes `h W_h` as one `[B, H] x [H, G]` product whose
  column blocks the gate math reads, rather than one product per gate.

  The gate math then reads slices of one buffer, which XLA:CPU compiles to scalar code (see
  `_recurrent_gates`), but at B >= 128 the step's elementwise work also gets split over the
  cores: XLA:CPU gives a memory-bound loop fusion a second thread only from 512 KB touched (its
  parallel-task cost model: 256 KB a thread), which per-gate `[128, 256]` fusions do not reach and
  the fewer, larger fusions reading one product do. And one product is faster than four: 100
  LSTM steps at 128x256 took 38.4 against 46.7 ms. Intel host, 2026-11-30, undifferentiated
  (the LSTM's per-step layout before, `per_step_forward_pays`): LSTM 1.11x / 1.03x / 1.37x /
  1.08x at 128x256x100, 256x256x50, 128x128x100, 128x384x50, GRU 1.14x at 128x256x100 and
  256x256x50; fwd+bwd within 1.5 % either way at 128x256x100 (LSTM 1.02x), 256x256x50 and
  128x128x100. At H=512 fwd+bwd was 0.98-0.99x (128x512x50), at B=32 0.93-0.94x (LSTM, H=256):
  not taken there.
  """
  return batch >= 128 and hidden < 512


def gates_overwrite_projections_pays(cell: base.Cell, batch: int, hidden: int) -> bool:
  """Whether the differentiated forward writes each gate's activations over its projection `x W_x`
  in place (`_make_layer`'s `forward_scan`) rather than into a fresh, zero-filled scan output.

  2-core Intel host, jaxlib 0.10.2, fwd+bwd, 9 alternating rounds (2026-11-30; gradients
  bit-identical either way). The LSTM: 1.01-1.06x faster at all four target shapes. The
  reset-after GRU: 1.06x at 128x256x100 (three runs), 1.02-1.05x at 64x256x100, 256x256x50,
  128x128x100, 64x512x100, 128x512x50, 32x512x100, 16x1024x100 and 32x1024x100, level at
  128x1024x30 and 8x1024x100, but 0.96-0.97x at 32x256x100 and 32x256x1000 and 0.98x at
  48x256x100: from B*H = 16384 on.
  (Below that it also compiled ~8 % slower: 0.585 against 0.540 s at 32x256x1000.) The
  reset-before GRU was 1.01-1.04x faster at 32x256x100, 64x256x100, 128x256x100 and 32x1024x100;
  it takes the GRU's rule. The Elman cell stores no gates.
  """
  return isinstance(cell, LSTM) or (isinstance(cell, GRU) and batch * hidden >= 16384)


def _recurrent_gates(h_BxH: jax.Array, params, gates: slice = slice(None)) -> tuple:
  """`h W_h` as one `[B, H]` buffer per gate (the consecutive `gates` only, if given).

  On CPU as one matmul per gate: XLA:CPU emits scalar code for a fusion that reads two
  or more column slices of one buffer (jnp.split of `h W_h`, then sigmoid/tanh), which
  made the LSTM gate math take as long as the recurrent matmul (~1 ms per step at
  B=128, H=256); with separate buffers it is vectorised. Where `one_recurrent_product_pays`
  (B >= 128, H < 512) one matmul all the same; where `transposed_recurrence_pays`, one
  `W_h^T h^T`, whose gate blocks are contiguous rows (each transposed back by the gate math
  that reads it). Elsewhere (GPU, TPU) one matmul.
  """
  blocks = params["w_h_gates"][gates]
  hidden = h_BxH.shape[-1]
  first = (gates.start or 0) * hidden
  if jax.default_backend() != "cpu" or one_recurrent_product_pays(*h_BxH.shape):
    w_h = params["w_h"][:, first:first + len(blocks) * hidden]
    return tuple(jnp.split(_mm(h_BxH, w_h), len(blocks), axis=-1))
  if not transposed_recurrence_pays(hidden):
    return tuple(_mm(h_BxH, w) for w in blocks)
  zT_GxB = _mm_transposed(params["w_hT"][first:first + len(blocks) * hidden], h_BxH)
  return tuple(zT_GxB[g * hidden:(g + 1) * hidden].T for g in range(len(blocks)))


def _recurrent_backward(d_rec_BxK: jax.Array, w_h: jax.Array, w_hT: jax.Array, transposed: bool) -> jax.Array:
  """`d_rec W_h[:, :K]^T`, the recurrent part of a backward step's `dh_prev`: `[B, H]`, or `[H, B]`
  if `transposed` (`W_h[:, :K] d_rec^T`, contracting both operands' last axes).

  The transposed product is the backward's counterpart of `_recurrent_gates`' and pays where it
  does. The backward loop carries it to the next step, whose gate math transposes it back: a
  transpose right after the product is folded into it by XLA, which then runs the slow kernel
  again. 100 steps of `[32, 4096] x [4096, 1024]`, a tanh between steps (Intel host): 210 ms
  batch-major, 112 ms transposed with the transpose after the tanh, 160 ms transposed back right
  after the product. In the fused layers at B=32, H=1024: fwd+bwd 1.13-1.15x faster (LSTM, GRU).
  """
  width = d_rec_BxK.shape[-1]
  return _mm_transposed(w_h[:, :width], d_rec_BxK) if transposed else _mm(d_rec_BxK, w_hT[:width])


def _mm(a, w):
  """`a @ w` in `w`'s dtype, accumulated in that of `a @ w`: the weights arrive already cast to
  the cell's `matmul_dtype`, so this is the cell's mixed-precision matmul (a plain one without)."""
  return base.matmul(a, w, w.dtype)


def _mm_transposed(w_KxN, a_BxN):
  """`w a^T` (`[K, B]`, contracting both operands' last axes) with `_mm`'s dtypes."""
  return jax.lax.dot_general(w_KxN, a_BxN.astype(w_KxN.dtype), (((1,), (1,)), ((), ())),
                             preferred_element_type=jnp.result_type(a_BxN, w_KxN))


def _dsigmoid(s):
  """Derivative of the sigmoid in terms of its value."""
  return s * (1.0 - s)


# --- Per-family steps ---------------------------------------------------------------------------
# `params` holds `w_h`, its gate blocks `w_h_gates`, its transpose `w_hT`, `b` and the family's extra params;
# `xw` is the step's `x W_x` as one `[B, H]` array per gate (the bias not yet added).
#   forward(params, carry, xw) -> (new_carry, h_BxH, gates): `gates`, a tuple of `[B, H]`
#     arrays, is stacked over time and handed back to `backward` at the same step.
#   backward(params, w_hT, step, dcarry, dh_BxH) -> (dcarry_prev, d_rec_BxK, dz_BxG, dhw_BxG, dextra):
#     `step` is a `_Step`; `dcarry` the cotangent of the new carry without its `h` part; `dh` the
#     whole cotangent of the new `h` (carry and output). The cotangent of the previous carry is
#     `dcarry_prev` plus `d_rec W_h[:, :K]^T` in its `h` part: the loop computes that product
#     (`_recurrent_backward`). `dz` is the cotangent of `x W_x + b`, `dhw` that of `h W_h`, None
#     where it equals `dz`; `dextra` this step's gradients of the family's small extra params (GRU
#     `b_hn`, LSTM `w_peep`), summed over the batch and accumulated by the loop.
# Every array a backward step reads is its own buffer (see `_recurrent_gates`): the LSTM
# keeps its incoming `c` rather than reading two steps of one stack of `c`s.


class _Step(NamedTuple):
  h_in: jax.Array        # [B, H] the carry's h before the step
  h_out: jax.Array       # [B, H] the step's output (on valid steps)
  gates: tuple           # what `forward` returned for this step


def _gate_inputs(params, xw, h):
  """Pre-activations `x W_x + b + h W_h`, one `[B, H]` array per gate."""
  b_gates = jnp.split(params["b"], len(xw))
  return tuple(x + base.along_last(b, x) + hw for x, b, hw in zip(xw, b_gates, _recurrent_gates(h, params)))


def _lstm_forward(params, carry, xw):
  c, h = carry
  i, f, g, o = _gate_inputs(params, xw, h)
  peep = params.get("w_peep")  # [3, H]: c -> i, c -> f, c' -> o (Gers & Schmidhuber 2000)
  if peep is not None:
    i, f = i + c * base.along_last(peep[0], c), f + c * base.along_last(peep[1], c)
  i, f, g = base.fast_sigmoid(i), base.fast_sigmoid(f), jnp.tanh(g)
  c_new = f * c + i * g
  if peep is not None:
    o = o + c_new * base.along_last(peep[2], c_new)
  o = base.fast_sigmoid(o)
  h_new = o * jnp.tanh(c_new)
  return LSTMState(c_new, h_new), h_new, (i, f, g, o, c)


def _lstm_backward(params, w_hT, step, dcarry, dh):
  del w_hT
  i, f, g, o, c_in = step.gates
  c_new = f * c_in + i * g  # recomputed exactly as in the forward: cheaper than storing
  tanh_c = jnp.tanh(c_new)
  dz_o = dh * tanh_c * _dsigmoid(o)
  dc = dcarry.c + dh * o * (1.0 - tanh_c * tanh_c)
  peep = params.get("w_peep")
  if peep is not None:
    dc = dc + dz_o * base.along_last(peep[2], dc)
  dz_i, dz_f = dc * g * _dsigmoid(i), dc * c_in * _dsigmoid(f)
  dz = jnp.concatenate([dz_i, dz_f, dc * i * (1.0 - g * g), dz_o], axis=-1)
  dc_prev = dc * f
  dextra = {}
  if peep is not None:
    dc_prev = dc_prev + dz_i * base.along_last(peep[0], dc) + dz_f * base.along_last(peep[1], dc)
    dextra["w_peep"] = jnp.stack([jnp.sum(dz_i * c_in, axis=0), jnp.sum(dz_f * c_in, axis=0),
                                  jnp.sum(dz_o * c_new, axis=0)])
  return LSTMState(dc_prev, jnp.zeros_like(dh)), dz, dz, None, dextra


def _gru_forward(params, h, xw):
  xr, xz, xn = (x + base.along_last(b, x) for x, b in zip(xw, jnp.split(params["b"], 3)))
  hr, hz, hn = _recurrent_gates(h, params)
  r = base.fast_sigmoid(xr + hr)
  u = base.fast_sigmoid(xz + hz)
  hn_b = hn + base.along_last(params["b_hn"], hn)
  n = jnp.tanh(xn + r * hn_b)
  h_new = n + u * (h - n)
  return h_new, h_new, (r, u, n, hn_b)


def _gru_backward(params, w_hT, step, dcarry, dh):
  del params, w_hT, dcarry  # the carry is h itself: all of its cotangent is in dh
  r, u, n, hn_b = step.gates
  da_n = dh * (1.0 - u) * (1.0 - n * n)
  da_r = da_n * hn_b * _dsigmoid(r)
  da_u = dh * (step.h_in - n) * _dsigmoid(u)
  dz = jnp.concatenate([da_r, da_u, da_n], axis=-1)
  dhw_n = da_n * r
  dhw = jnp.concatenate([da_r, da_u, dhw_n], axis=-1)
  return dh * u, dhw, dz, dhw, {"b_hn": jnp.sum(dhw_n, axis=0)}


def _gru_reset_before_forward(params, h, xw):
  xr, xz, xn = (x + base.along_last(b, x) for x, b in zip(xw, jnp.split(params["b"], 3)))
  hr, hz = _recurrent_gates(h, params, slice(0, 2))
  r = base.fast_sigmoid(xr + hr)
  u = base.fast_sigmoid(xz + hz)
  (hn,) = _recurrent_gates(r * h, params, slice(2, 3))
  n = jnp.tanh(xn + hn)
  h_new = n + u * (h - n)
  return h_new, h_new, (r, u, n)


def _gru_reset_before_backward(params, w_hT, step, dcarry, dh):
  del params, dcarry
  r, u, n = step.gates
  hidden = dh.shape[-1]
  da_n = dh * (1.0 - u) * (1.0 - n * n)
  d_rh = _mm(da_n, w_hT[2 * hidden:])  # the cotangent of r * h
  da_r = d_rh * step.h_in * _dsigmoid(r)
  da_u = dh * (step.h_in - n) * _dsigmoid(u)
  d_ru = jnp.concatenate([da_r, da_u], axis=-1)  # what the r and z blocks of W_h^T multiply
  return dh * u + d_rh * r, d_ru, jnp.concatenate([d_ru, da_n], axis=-1), None, {}


def _gru_reset_before_w_h_grad(h_in_TxBxH, gates, dz_TxBxG, dhw_TxBxG, dtype):
  """`dW_h`: the r and z blocks read `h`, the n block reads `r * h`."""
  del dhw_TxBxG
  hidden = h_in_TxBxH.shape[-1]
  return jnp.concatenate([_weight_grad(_rows(h_in_TxBxH), dz_TxBxG[..., :2 * hidden], dtype),
                          _weight_grad(_rows(gates[0] * h_in_TxBxH), dz_TxBxG[..., 2 * hidden:], dtype)], axis=1)


def _elman_derivative_tanh(h):
  return 1.0 - h * h


def _elman_derivative_relu(h):
  return (h > 0).astype(h.dtype)


_ELMAN_DERIVATIVES = {"tanh": _elman_derivative_tanh, "relu": _elman_derivative_relu}
_ELMAN_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def _elman_forward(activation, params, h, xw):
  (pre,) = _gate_inputs(params, xw, h)
  h_new = _ELMAN_ACTIVATIONS[activation](pre)
  return h_new, h_new, ()


def _elman_backward(activation, params, w_hT, step, dcarry, dh):
  del params, w_hT, dcarry
  dz = dh * _ELMAN_DERIVATIVES[activation](step.h_out)
  return jnp.zeros_like(dh), dz, dz, None, {}


class _Family(NamedTuple):
  forward: Callable
  backward: Callable
  carry_h: Callable          # the h inside a carry
  add_h: Callable            # `(carry, dh) -> carry` with `dh` added to its h
  num_gates: int
  extra_params: tuple        # params besides w_h and b that the recurrence reads (gradients: `dextra`)
  # `(h_in, gates, dz, dhw, dtype) -> dW_h` where the rows `W_h` multiplies are not all `h_in`
  # (GRU); None: dW_h comes out of the one `[x, h_in, 1]` matmul with `dz`.
  w_h_grad: Callable | None = None


def _dhw_w_h_grad(h_in_TxBxH, gates, dz_TxBxG, dhw_TxBxG, dtype):
  """`dW_h = h_in^T dhw` (the reset-after GRU, whose `h W_h` has its own cotangent)."""
  del gates, dz_TxBxG
  return _weight_grad(_rows(h_in_TxBxH), dhw_TxBxG, dtype)


def _family(cell: base.Cell) -> _Family:
  if isinstance(cell, LSTM):
    return _Family(_lstm_forward, _lstm_backward, lambda carry: carry.h,
                   lambda carry, dh: carry._replace(h=carry.h + dh), 4, ("w_peep",) if cell.peepholes else ())
  if isinstance(cell, GRU) and cell.reset_after:
    return _Family(_gru_forward, _gru_backward, lambda h: h, jnp.add, 3, ("b_hn",), _dhw_w_h_grad)
  if isinstance(cell, GRU):
    return _Family(_gru_reset_before_forward, _gru_reset_before_backward, lambda h: h, jnp.add, 3, (),
                   _gru_reset_before_w_h_grad)
  return _Family(functools.partial(_elman_forward, cell.activation),
                 functools.partial(_elman_backward, cell.activation), lambda h: h, jnp.add, 1, ())


def _overwritable(gates: tuple, xw: tuple) -> int:
  """How many leading `gates` (arrays or shapes) have the shapes and dtypes of the projections `xw`."""
  n = 0
  while n < min(len(gates), len(xw)) and (gates[n].shape, gates[n].dtype) == (xw[n].shape, xw[n].dtype):
    n += 1
  return n


def _where(mask, new, old):
  return jax.tree.map(lambda a, b: jnp.where(mask, a, b), new, old)


def _mask_at(t, lengths_B, like_BxH):
  """`[B, 1]` True where step `t` is inside the sequence."""
  return jnp.reshape(t < lengths_B, (like_BxH.shape[0], 1))


def _rows(*arrays_TxBxK):
  """`[T*B, sum K]`: the arrays' features side by side, one row per (t, b)."""
  return jnp.concatenate([jnp.reshape(a, (-1, a.shape[-1])) for a in arrays_TxBxK], axis=1)


def _weight_grad(lhs_NxK, d_TxBxG, dtype=None):
  """`lhs^T d` over all N = T*B rows, with operands in `dtype` (the cell's `matmul_dtype`) and
  accumulated in at least float32.

  Flattening (t, b) explicitly keeps XLA from contracting in (b, t) order, which cost a
  transposed copy of `d` (the largest array of the backward pass). The contraction runs over
  the rows of both operands: writing `lhs^T` first cost a transposing pass (10 of 43 ms at
  B=128, H=256, T=100; no faster at H=1024 or B=32).
  """
  dtype = dtype or jnp.result_type(lhs_NxK, d_TxBxG)
  return base.contract_rows(lhs_NxK.astype(dtype), d_TxBxG.astype(dtype),
                            jnp.promote_types(d_TxBxG.dtype, jnp.float32))


@functools.lru_cache(maxsize=None)
def _make_layer(cell: base.Cell, reverse: bool, masked: bool, unroll: int, primal: Callable | None):
  """The custom-VJP layer `(w_x, rec_params, xs, carry, lengths) -> (carry, ys)` for one configuration;
  `primal` (see `run`) computes it when it is not differentiated."""
  family = _family(cell)
  matmul_dtype = cell.matmul_dtype

  def cast(w):
    """A weight in the cell's matmul dtype (cast once, outside the loops)."""
    return w if matmul_dtype is None else w.astype(matmul_dtype)

  def forward_scan(w_x, rec_params, xs_TxBxI, carry, lengths_B, keep_gates):
    """`(final_carry, ys_TxBxH, gates)`, `gates` stacked over time if `keep_gates` (else left to
    XLA's dead-code elimination).

    Kept, where `gates_overwrite_projections_pays`, each gate's activations overwrite its projection
    `x W_x` in place, step by step, where they have its shape and dtype (LSTM: i, f, g, o; GRU: r, u,
    n), rather than filling a scan output (a fresh zero-filled stack, written once more); the rest
    (LSTM `c`, GRU `h W_hn + b_hn`) are scan outputs (experiments/benchmark, item 12). XLA updates
    a loop-carried stack in place only if every read of it in the step feeds the value written
    back; otherwise it copies the whole stack every step, which is why the backward cannot write
    `dz` over the gates it reads (the LSTM reads `f` for `dc_prev` too).
    """
    steps = xs_TxBxI.shape[0]
    w_h = cast(rec_params["w_h"])
    rec_params = {**rec_params, "w_h": w_h, "w_h_gates": _gate_blocks(w_h, family.num_gates), "w_hT": w_h.T}
    # The hoisted projection: one matmul over all steps per gate (separate buffers, see
    # `_recurrent_gates`).
    xw = tuple(base.matmul(xs_TxBxI, w, matmul_dtype) for w in _gate_blocks(w_x, family.num_gates))
    overwritten = 0  # how many of the gates take the place of their projection
    if keep_gates and gates_overwrite_projections_pays(cell, xs_TxBxI.shape[1], w_h.shape[0]):
      xw_step = tuple(jax.ShapeDtypeStruct(x.shape[1:], x.dtype) for x in xw)
      overwritten = _overwritable(jax.eval_shape(family.forward, rec_params, carry, xw_step)[2], xw_step)

    def body(loop_carry, t_and_xw):
      carry, stacks = loop_carry
      t, xw_rest = t_and_xw
      xw = tuple(jax.lax.dynamic_index_in_dim(x, t, keepdims=False) for x in stacks) + xw_rest
      new_carry, h_BxH, gates = family.forward(rec_params, carry, xw)
      if masked:
        mask = _mask_at(t, lengths_B, h_BxH)
        new_carry = _where(mask, new_carry, carry)
        h_BxH = jnp.where(mask, h_BxH, 0)
      stacks = tuple(jax.lax.dynamic_update_index_in_dim(x, g, t, 0) for x, g in zip(stacks, gates))
      return (new_carry, stacks), (h_BxH, gates[overwritten:])

    (final, stacks), (ys_TxBxH, rest) = jax.lax.scan(
        body, (carry, xw[:overwritten]), (jnp.arange(steps), xw[overwritten:]), reverse=reverse, unroll=unroll)
    return final, ys_TxBxH, stacks + rest

  @jax.custom_vjp
  def layer(w_x, rec_params, xs_TxBxI, carry, lengths_B):
    if primal is not None:
      return primal(cell, {"w_x": w_x, **rec_params}, xs_TxBxI, carry, lengths_B if masked else None,
                    reverse=reverse, unroll=unroll)
    final, ys_TxBxH, _ = forward_scan(w_x, rec_params, xs_TxBxI, carry, lengths_B, keep_gates=False)
    return final, ys_TxBxH

  def layer_fwd(w_x, rec_params, xs_TxBxI, carry, lengths_B):
    final, ys_TxBxH, gates = forward_scan(w_x, rec_params, xs_TxBxI, carry, lengths_B, keep_gates=True)
    return (final, ys_TxBxH), (w_x, rec_params, xs_TxBxI, family.carry_h(carry), lengths_B, ys_TxBxH, gates)

  def inputs_h(lengths_B, ys_TxBxH, h0_BxH):
    """`[T, B, H]`: the carry's h before each step, the previous step's output or `h0` before the
    first (a reverse run reaches a sequence's last valid step straight from `h0`). One shifted copy
    of the outputs, read by the backward loop and the weight gradient alike: indexing the outputs
    per step (a gather under vmap) ran no faster and compiled ~5 % slower (GRU, 32x256x1000)."""
    if reverse:
      shifted, prev = jnp.concatenate([ys_TxBxH[1:], h0_BxH[None]]), jnp.arange(1, ys_TxBxH.shape[0] + 1)
    else:
      shifted, prev = jnp.concatenate([h0_BxH[None], ys_TxBxH[:-1]]), jnp.arange(-1, ys_TxBxH.shape[0] - 1)
    if not masked:
      return shifted
    valid_TxBx1 = (prev[:, None] < lengths_B[None, :])[..., None]
    return jnp.where(valid_TxBx1, shifted, h0_BxH[None])

  def layer_bwd(saved, cotangents):
    w_x, rec_params, xs_TxBxI, h0_BxH, lengths_B, ys_TxBxH, gates = saved
    dcarry, dys_TxBxH = cotangents
    w_h = cast(rec_params["w_h"])
    w_hT = w_h.T
    steps = dys_TxBxH.shape[0]
    transposed = jax.default_backend() == "cpu" and transposed_recurrence_pays(w_h.shape[0])

    def body(loop_carry, inputs):
      dcarry, dh_recT, dextra_sum = loop_carry
      t, dy_BxH, y_BxH, h_in_BxH, gates_t = inputs
      step = _Step(h_in=h_in_BxH, h_out=y_BxH, gates=gates_t)
      if transposed:  # the previous step's recurrent product, carried as `[H, B]`
        dcarry = family.add_h(dcarry, dh_recT.T)
      dh_BxH = family.carry_h(dcarry) + dy_BxH
      if masked:  # padded steps pass the carry's cotangent straight through
        mask = _mask_at(t, lengths_B, dy_BxH)
        passed = _where(mask, jax.tree.map(jnp.zeros_like, dcarry), dcarry)
        dcarry = _where(mask, dcarry, jax.tree.map(jnp.zeros_like, dcarry))
        dh_BxH = jnp.where(mask, dh_BxH, 0)
      dprev, d_rec_BxK, dz_BxG, dhw_BxG, dextra = family.backward(rec_params, w_hT, step, dcarry, dh_BxH)
      if masked:
        dprev = jax.tree.map(jnp.add, dprev, passed)
      product = _recurrent_backward(d_rec_BxK, w_h, w_hT, transposed)
      if transposed:  # carried to the next step
        dh_recT = product
      else:
        dprev = family.add_h(dprev, product)
      return (dprev, dh_recT, jax.tree.map(jnp.add, dextra_sum, dextra)), (dz_BxG, dhw_BxG)

    h_in_TxBxH = inputs_h(lengths_B, ys_TxBxH, h0_BxH)
    dh_recT = jnp.zeros_like(h0_BxH.T) if transposed else ()  # the product carried to the next step
    # Summed over steps in at least float32 (a bfloat16 sum over T steps would lose the small ones).
    dextra_zero = {name: jnp.zeros(rec_params[name].shape, jnp.promote_types(rec_params[name].dtype, jnp.float32))
                   for name in family.extra_params}
    (dcarry, dh_recT, dextra), (dz_TxBxG, dhw_TxBxG) = jax.lax.scan(
        body, (dcarry, dh_recT, dextra_zero), (jnp.arange(steps), dys_TxBxH, ys_TxBxH, h_in_TxBxH, gates),
        reverse=not reverse, unroll=unroll)
    if transposed:
      dcarry = family.add_h(dcarry, dh_recT.T)

    # The weight gradients as single matmuls over all T*B rows (the point of this module).
    if family.w_h_grad is None:  # dW_x, dW_h and db from one [I+H+1, T*B] x [T*B, G] matmul
      ones_TxBx1 = jnp.ones(xs_TxBxI.shape[:2] + (1,), xs_TxBxI.dtype)
      inputs = xs_TxBxI.shape[-1]
      stacked = _weight_grad(_rows(xs_TxBxI, h_in_TxBxH, ones_TxBx1), dz_TxBxG, matmul_dtype)
      dw_x, grads = stacked[:inputs], {"w_h": stacked[inputs:-1], "b": stacked[-1], **dextra}
    else:  # the GRU: no row of ones here, whose concatenation with `x` cost compile time
      # (fwd+bwd at 32x256x1000 with the harness's malloc settings: 0.58 against 0.53 s, flax 0.52)
      # and no run time (the bias sum is its own pass over `dz`; for the LSTM that pass cost 5 %).
      dw_x = _weight_grad(_rows(xs_TxBxI), dz_TxBxG, matmul_dtype)
      w_h_grad = family.w_h_grad(h_in_TxBxH, gates, dz_TxBxG, dhw_TxBxG, matmul_dtype)
      db = jnp.sum(dz_TxBxG, axis=(0, 1), dtype=jnp.promote_types(dz_TxBxG.dtype, jnp.float32))
      grads = {"w_h": w_h_grad, "b": db, **dextra}
    dxs_TxBxI = base.matmul(dz_TxBxG, w_x.T, matmul_dtype).astype(xs_TxBxI.dtype)
    grads = {k: v.astype(rec_params[k].dtype) for k, v in grads.items()}
    return dw_x.astype(w_x.dtype), grads, dxs_TxBxI, dcarry, None

  layer.defvjp(layer_fwd, layer_bwd)
  return layer


def run(cell: base.Cell, params: Any, xs_TxBxI: jax.Array, carry: Any, *, lengths: jax.Array | None = None,
        reverse: bool = False, unroll: int = 1, remat: bool = False, primal: Callable | None = None):
  """Runs `cell` over time-major inputs; what `scan.run(..., hoist=True)` computes.

  Args:
    xs_TxBxI: the inputs, time-major.
    carry: the initial carry for batch `(B,)`.
    lengths: optional `[B]` valid lengths; padded steps keep the carry and output zeros.
    remat: keep residuals for one chunk of steps at a time (`_run_checkpointed`).
    primal: optional `(cell, params, xs_TxBxI, carry, lengths, *, reverse, unroll) -> (carry, ys)`
      computing the same values, used instead of the hoisted forward when the call is not
      differentiated (the runner passes its per-step scan where `per_step_forward_pays`).
  Returns:
    `(final_carry, ys_TxBxH)`, as `scan.run(..., hoist=True, time_major=True)`.
  Raises:
    ValueError: for a cell or option `unsupported_reason` names.
  """
  reason = unsupported_reason(cell)
  if reason is not None:
    raise ValueError(f"fused backward unavailable: {reason}")
  family = _family(cell)
  if xs_TxBxI.shape[0] == 0:  # no steps: the carry passes through (and the backward has nothing to index)
    h_BxH = family.carry_h(carry)
    return carry, jnp.zeros((0,) + h_BxH.shape, h_BxH.dtype)
  rec_params = {name: params[name] for name in ("w_h", "b", *family.extra_params)}
  if remat:
    return _run_checkpointed(cell, params["w_x"], rec_params, xs_TxBxI, carry, lengths, reverse, unroll, primal)
  masked = lengths is not None
  lengths_B = lengths if masked else jnp.zeros((xs_TxBxI.shape[1],), jnp.int32)
  return _make_layer(cell, reverse, masked, unroll, primal)(params["w_x"], rec_params, xs_TxBxI, carry, lengths_B)


def remat_chunks(steps: int) -> tuple[int, int]:
  """`(number, size)` of the chunks `remat` splits `steps` into: about sqrt(T) chunks of about
  sqrt(T) steps, which minimises one carry per chunk plus one chunk's residuals. A divisor of T
  within a factor 2 of sqrt(T) if there is one (no padding); otherwise `number * size - steps`
  (< number) padded steps close the last chunk, at the cost of copying the inputs and outputs."""
  if steps < 2:
    return steps, 1
  root = math.isqrt(steps)
  divisors = [d for d in range(1, 2 * root + 1) if steps % d == 0 and steps <= 4 * d * d <= 16 * steps]
  if divisors:
    size = min(divisors, key=lambda d: abs(math.log(d * d / steps)))
    return steps // size, size
  number = -(-steps // root)
  return number, -(-steps // number)


def _run_checkpointed(cell, w_x, rec_params, xs_TxBxI, carry, lengths, reverse, unroll, primal):
  """`run` with remat: a `lax.scan` over chunks of steps, each chunk the fused layer under
  `jax.checkpoint`. The forward keeps one carry per chunk; the backward reruns one chunk's
  hoisted forward, then its hand-written backward, so residuals (gates, `dz`) exist for one chunk
  at a time: `O(sqrt(T) B G)` memory beyond inputs and outputs, for one more forward pass. Padded
  steps at the end are masked like lengths, so a reverse run skips them.
  """
  steps, batch = xs_TxBxI.shape[:2]
  number, size = remat_chunks(steps)
  padding = number * size - steps
  masked = lengths is not None or padding > 0
  lengths_B = jnp.full((batch,), steps, jnp.int32) if lengths is None else lengths
  if padding:
    xs_TxBxI = jnp.pad(xs_TxBxI, ((0, padding), (0, 0), (0, 0)))
  layer = _make_layer(cell, reverse, masked, unroll, primal)

  def chunk(carry, k_and_xs):
    k, xs_KxBxI = k_and_xs
    return layer(w_x, rec_params, xs_KxBxI, carry, lengths_B - k * size)

  carry, ys_NxKxBxH = jax.lax.scan(jax.checkpoint(chunk, prevent_cse=False), carry,
                                   (jnp.arange(number), jnp.reshape(xs_TxBxI, (number, size) + xs_TxBxI.shape[1:])),
                                   reverse=reverse)
  return carry, jnp.reshape(ys_NxKxBxH, (number * size,) + ys_NxKxBxH.shape[2:])[:steps]
