"""The fused layer: one layer, one direction, a hoisted input projection and a hand-written VJP.

  carry, ys_TxBxH = layer.run(cell, params, xs_TxBxI, carry, lengths=lengths_B, reverse=False)

The input projection `xs W_x` is one matmul over all steps before the loop, then a `lax.scan` runs
the cell family's forward steps (`rnn_jax.fused.kernel`). Autodiff of `lax.scan` would add every
step's `h_{t-1}^T dz_t` into a weight-gradient accumulator carried through the backward loop; here
the backward loop carries only `dh` (and `dc`) and stacks `dz_t`, and afterwards ONE
`[I+H+1, T*B] x [T*B, G]` matmul gives dW_x, dW_h and db (the bias through a row of ones) and one
more gives dx. Values and gradients equal autodiff of the runner's scan up to float rounding
(tests/test_fused.py). No forward-mode derivative (`jax.jvp`) through the custom VJP.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from rnn_jax import ops
from rnn_jax.cells import base
from rnn_jax.fused import kernel, policy


def unsupported_reason(cell: base.Cell) -> str | None:
  """None if `run` handles `cell`, else why not."""
  family = kernel.family(cell)
  return family if isinstance(family, str) else None


def _overwritable(gates: tuple, xw: tuple) -> int:
  """How many leading `gates` (arrays or shapes) have the shapes and dtypes of the projections `xw`."""
  n = 0
  while n < min(len(gates), len(xw)) and (gates[n].shape, gates[n].dtype) == (xw[n].shape, xw[n].dtype):
    n += 1
  return n


def _where(mask, new, old):
  return jax.tree.map(lambda a, b: jnp.where(mask, a, b), new, old)


@dataclasses.dataclass(frozen=True)
class _Layer:
  """One configuration of the fused layer: the cell, its kernel family, the direction, whether sequences have
  lengths, and the scan's unroll."""
  cell: base.Cell
  reverse: bool
  masked: bool
  unroll: int

  @property
  def family(self):
    return kernel.family(self.cell)

  def cast(self, w):
    """A weight in the cell's matmul dtype (cast once, outside the loops)."""
    return w if self.cell.matmul_dtype is None else w.astype(self.cell.matmul_dtype)


def _forward_scan(layer: _Layer, w_x, rec_params, xs_TxBxI, carry, lengths_B, keep_gates):
  """`(final_carry, ys_TxBxH, gates)`, `gates` stacked over time if `keep_gates` (else left to XLA's
  dead-code elimination).

  Kept, where `policy.gates_overwrite_projections_pays`, each gate's activations overwrite its projection
  `x W_x` in place where they have its shape and dtype (LSTM: i, f, g, o; GRU: r, u, n); the rest are scan
  outputs. XLA updates a loop-carried stack in place only if every read of it in the step feeds the value
  written back (else it copies the stack every step), so the backward cannot write `dz` over the gates it reads.
  """
  family, steps = layer.family, xs_TxBxI.shape[0]
  w_h = layer.cast(rec_params["w_h"])
  rec_params = {**rec_params, "w_h": w_h, "w_h_gates": kernel.gate_blocks(w_h, family.num_gates), "w_hT": w_h.T}
  # The hoisted projection: one matmul over all steps per gate (separate buffers, see `_recurrent_gates`).
  xw = tuple(ops.matmul(xs_TxBxI, w, layer.cell.matmul_dtype) for w in kernel.gate_blocks(w_x, family.num_gates))
  overwritten = 0  # how many of the gates take the place of their projection
  if keep_gates and policy.gates_overwrite_projections_pays(layer.cell, xs_TxBxI.shape[1], w_h.shape[0]):
    xw_step = tuple(jax.ShapeDtypeStruct(x.shape[1:], x.dtype) for x in xw)
    overwritten = _overwritable(jax.eval_shape(family.forward, rec_params, carry, xw_step)[2], xw_step)

  def body(loop_carry, t_and_xw):
    carry, stacks = loop_carry
    t, xw_rest = t_and_xw
    xw = tuple(jax.lax.dynamic_index_in_dim(x, t, keepdims=False) for x in stacks) + xw_rest
    new_carry, h_BxH, gates = family.forward(rec_params, carry, xw)
    if layer.masked:
      mask = ops.valid_at(t, lengths_B, h_BxH)
      new_carry = _where(mask, new_carry, carry)
      h_BxH = jnp.where(mask, h_BxH, 0)
    stacks = tuple(jax.lax.dynamic_update_index_in_dim(x, g, t, 0) for x, g in zip(stacks, gates))
    return (new_carry, stacks), (h_BxH, gates[overwritten:])

  (final, stacks), (ys_TxBxH, rest) = jax.lax.scan(body, (carry, xw[:overwritten]),
                                                   (jnp.arange(steps), xw[overwritten:]),
                                                   reverse=layer.reverse, unroll=layer.unroll)
  return final, ys_TxBxH, stacks + rest


def _inputs_h(layer: _Layer, lengths_B, ys_TxBxH, h0_BxH):
  """`[T, B, H]`: the carry's h before each step, the previous step's output or `h0` before the first (a
  reverse run reaches a sequence's last valid step straight from `h0`). One shifted copy of the outputs, read
  by the backward loop and the weight gradient alike: indexing the outputs per step (a gather under vmap) ran
  no faster and compiled ~5 % slower (GRU, 32x256x1000)."""
  if layer.reverse:
    shifted, prev = jnp.concatenate([ys_TxBxH[1:], h0_BxH[None]]), jnp.arange(1, ys_TxBxH.shape[0] + 1)
  else:
    shifted, prev = jnp.concatenate([h0_BxH[None], ys_TxBxH[:-1]]), jnp.arange(-1, ys_TxBxH.shape[0] - 1)
  if not layer.masked:
    return shifted
  valid_TxBx1 = (prev[:, None] < lengths_B[None, :])[..., None]
  return jnp.where(valid_TxBx1, shifted, h0_BxH[None])


def _backward_scan(layer: _Layer, rec_params, dcarry, dys_TxBxH, ys_TxBxH, h_in_TxBxH, gates, lengths_B):
  """`(dcarry, dextra, dz_TxBxG, dhw_TxBxG)`: the loop back over time carrying only the carry's cotangent
  (and, where `policy.transposed_recurrence_pays`, the previous step's recurrent product as `[H, B]`)."""
  family = layer.family
  w_h = layer.cast(rec_params["w_h"])
  w_hT = w_h.T
  transposed = policy.transposed_recurrence_pays(w_h.shape[0])

  def body(loop_carry, inputs):
    dcarry, dh_recT, dextra_sum = loop_carry
    t, dy_BxH, y_BxH, h_in_BxH, gates_t = inputs
    step = kernel.Step(h_in=h_in_BxH, h_out=y_BxH, gates=gates_t)
    if transposed:  # the previous step's recurrent product, carried as `[H, B]`
      dcarry = family.add_h(dcarry, dh_recT.T)
    dh_BxH = family.carry_h(dcarry) + dy_BxH
    if layer.masked:  # padded steps pass the carry's cotangent straight through
      mask = ops.valid_at(t, lengths_B, dy_BxH)
      passed = _where(mask, jax.tree.map(jnp.zeros_like, dcarry), dcarry)
      dcarry = _where(mask, dcarry, jax.tree.map(jnp.zeros_like, dcarry))
      dh_BxH = jnp.where(mask, dh_BxH, 0)
    dprev, d_rec_BxK, dz_BxG, dhw_BxG, dextra = family.backward(rec_params, w_hT, step, dcarry, dh_BxH)
    if layer.masked:
      dprev = jax.tree.map(jnp.add, dprev, passed)
    product = kernel.recurrent_backward(d_rec_BxK, w_h, w_hT, transposed)
    if transposed:  # carried to the next step
      dh_recT = product
    else:
      dprev = family.add_h(dprev, product)
    return (dprev, dh_recT, jax.tree.map(jnp.add, dextra_sum, dextra)), (dz_BxG, dhw_BxG)

  dh_recT = jnp.zeros_like(h_in_TxBxH[0].T) if transposed else ()  # the product carried to the next step
  # Summed over steps in at least float32 (a bfloat16 sum over T steps would lose the small ones).
  dextra_zero = {name: jnp.zeros(rec_params[name].shape, jnp.promote_types(rec_params[name].dtype, jnp.float32))
                 for name in family.extra_params}
  steps = dys_TxBxH.shape[0]
  (dcarry, dh_recT, dextra), (dz_TxBxG, dhw_TxBxG) = jax.lax.scan(
      body, (dcarry, dh_recT, dextra_zero), (jnp.arange(steps), dys_TxBxH, ys_TxBxH, h_in_TxBxH, gates),
      reverse=not layer.reverse, unroll=layer.unroll)
  if transposed:
    dcarry = family.add_h(dcarry, dh_recT.T)
  return dcarry, dextra, dz_TxBxG, dhw_TxBxG


def _weight_grads(layer: _Layer, xs_TxBxI, h_in_TxBxH, gates, dz_TxBxG, dhw_TxBxG):
  """`(dW_x, {w_h, b} grads)` as single matmuls over all T*B rows (the point of the fused layer)."""
  family, matmul_dtype = layer.family, layer.cell.matmul_dtype
  if family.w_h_grad is None:  # dW_x, dW_h and db from one [I+H+1, T*B] x [T*B, G] matmul
    ones_TxBx1 = jnp.ones(xs_TxBxI.shape[:2] + (1,), xs_TxBxI.dtype)
    inputs = xs_TxBxI.shape[-1]
    stacked = kernel.weight_grad(kernel.rows(xs_TxBxI, h_in_TxBxH, ones_TxBx1), dz_TxBxG, matmul_dtype)
    return stacked[:inputs], {"w_h": stacked[inputs:-1], "b": stacked[-1]}
  # The GRU: no row of ones (its concatenation with `x` cost compile time), a separate bias sum.
  dw_x = kernel.weight_grad(kernel.rows(xs_TxBxI), dz_TxBxG, matmul_dtype)
  w_h_grad = family.w_h_grad(h_in_TxBxH, gates, dz_TxBxG, dhw_TxBxG, matmul_dtype)
  db = jnp.sum(dz_TxBxG, axis=(0, 1), dtype=jnp.promote_types(dz_TxBxG.dtype, jnp.float32))
  return dw_x, {"w_h": w_h_grad, "b": db}


@functools.lru_cache(maxsize=None)
def _make_layer(cell: base.Cell, reverse: bool, masked: bool, unroll: int, primal: Callable | None):
  """The custom-VJP layer `(w_x, rec_params, xs, carry, lengths) -> (carry, ys)` for one configuration;
  `primal` (see `run`) computes it when it is not differentiated."""
  config = _Layer(cell, reverse, masked, unroll)

  @jax.custom_vjp
  def layer(w_x, rec_params, xs_TxBxI, carry, lengths_B):
    if primal is not None:
      return primal(cell, {"w_x": w_x, **rec_params}, xs_TxBxI, carry, lengths_B if masked else None,
                    reverse=reverse, unroll=unroll)
    final, ys_TxBxH, _ = _forward_scan(config, w_x, rec_params, xs_TxBxI, carry, lengths_B, keep_gates=False)
    return final, ys_TxBxH

  def layer_fwd(w_x, rec_params, xs_TxBxI, carry, lengths_B):
    final, ys_TxBxH, gates = _forward_scan(config, w_x, rec_params, xs_TxBxI, carry, lengths_B, keep_gates=True)
    return (final, ys_TxBxH), (w_x, rec_params, xs_TxBxI, config.family.carry_h(carry), lengths_B, ys_TxBxH, gates)

  def layer_bwd(saved, cotangents):
    w_x, rec_params, xs_TxBxI, h0_BxH, lengths_B, ys_TxBxH, gates = saved
    dcarry, dys_TxBxH = cotangents
    h_in_TxBxH = _inputs_h(config, lengths_B, ys_TxBxH, h0_BxH)
    dcarry, dextra, dz_TxBxG, dhw_TxBxG = _backward_scan(config, rec_params, dcarry, dys_TxBxH, ys_TxBxH,
                                                         h_in_TxBxH, gates, lengths_B)
    dw_x, grads = _weight_grads(config, xs_TxBxI, h_in_TxBxH, gates, dz_TxBxG, dhw_TxBxG)
    dxs_TxBxI = ops.matmul(dz_TxBxG, w_x.T, cell.matmul_dtype).astype(xs_TxBxI.dtype)
    grads = {k: v.astype(rec_params[k].dtype) for k, v in {**grads, **dextra}.items()}
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
    ValueError: for a cell or options without a kernel (`unsupported_reason`).
  """
  family = kernel.family(cell)
  if isinstance(family, str):
    raise ValueError(f"fused backward unavailable: {family}")
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
