"""Hand-written backward passes for the plain LSTM, GRU and Elman cells.

  z_TxBxG = cell.project(params, x_TxBxI)                  # hoisted; autodiff differentiates it
  carry, ys_TxBxH = fused.run(cell, params, z_TxBxG, carry, lengths=lengths_B, reverse=False)

`run` is a `jax.custom_vjp` over the recurrent part of the hoisted layout. Values
and gradients equal those of `rnn_jax.scan.run(..., hoist=True)` (autodiff of the
same scan) up to float rounding; `scan.run(..., backward="fused")` routes here.

Why a hand-written VJP (PERF-NOTES 2; measured again in experiments/benchmark):
  * Autodiff of `lax.scan` transposes the step, so every backward step adds its
    `h_{t-1}^T dz_t` into a `[H, G]` weight-gradient accumulator that is carried
    through the loop (a `[B,H]x[B,G]` matmul plus a read-modify-write of `G*H`
    floats per step, on the critical path). Here the backward scan carries only
    `dh` (and `dc`), emits `dz_t`, and the weight gradient is one
    `[H, T*B] x [T*B, G]` matmul after the loop, which runs at the matmul ceiling.
  * The forward keeps exactly the activations the backward needs (gates, `tanh c`,
    the incoming carry) instead of whatever autodiff happens to save.
  * XLA:CPU emits scalar (unvectorised) code for an elementwise fusion that reads
    several column slices of one buffer and applies a transcendental to them, which
    is what `jnp.split(z + h W, 4)` followed by sigmoid/tanh becomes: the LSTM gate
    math took ~80 us per step at B=32, H=256, about as long as the recurrent matmul.
    On CPU the split gates are therefore materialised first (`_split_gates`), so each
    activation reads a whole buffer and is vectorised (8x faster gate math).

Supported: LSTM without peepholes or layer norm, GRU with `reset_after=True`,
Elman (tanh, relu); lengths masking and reverse exactly as in `scan.run`.
`unsupported_reason` names what is not (remat, other cells or options).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax.cells import base
from rnn_jax.cells.elman import Elman
from rnn_jax.cells.gru import GRU
from rnn_jax.cells.lstm import LSTM, LSTMState


def unsupported_reason(cell: base.Cell, *, remat: bool = False) -> str | None:
  """None if `run` handles `cell` with these runner options, else why not."""
  if remat:
    return "remat is not implemented by the fused backward (it stores activations); use autodiff"
  # Exact types: a subclass may change `recur`, which these kernels re-implement.
  if type(cell) is LSTM:  # pylint: disable=unidiomatic-typecheck
    if cell.peepholes or cell.layer_norm:
      return "the fused LSTM has no peepholes or layer norm"
    return None
  if type(cell) is GRU:  # pylint: disable=unidiomatic-typecheck
    return None if cell.reset_after else "the fused GRU needs reset_after=True"
  if type(cell) is Elman:  # pylint: disable=unidiomatic-typecheck
    return None if cell.activation in _ELMAN_DERIVATIVES else f"no fused Elman for {cell.activation!r}"
  return f"no fused kernel for cell {type(cell).__name__} ({cell.name!r})"


def use_by_default(cell: base.Cell, *, remat: bool = False, backend: str | None = None) -> bool:
  """Whether `scan.run(backward="auto")` takes the fused path.

  Always when supported: the fused backward was never slower than autodiff of the
  same hoisted scan in our measurements (experiments/benchmark/README.md), on CPU
  because of the points in the module docstring, on GPU because it turns T small
  weight-gradient matmuls into one large one.
  """
  del backend
  return unsupported_reason(cell, remat=remat) is None


def _split_gates(x_BxG: jax.Array, num: int) -> list[jax.Array]:
  """`num` equal column blocks, materialised on CPU (see the module docstring)."""
  parts = jnp.split(x_BxG, num, axis=-1)
  if jax.default_backend() == "cpu":
    parts = jax.lax.optimization_barrier(parts)
  return list(parts)


def _dsigmoid(s):
  """Derivative of the sigmoid in terms of its value."""
  return s * (1.0 - s)


# --- Per-family steps ---------------------------------------------------------------------------
# forward(params, carry, z_BxG) -> (new_carry, h_BxH, residuals)
# backward(params, w_hT, residuals, dcarry, dh_BxH) -> (dcarry_prev, dz_BxG, dhw_BxG)
#   `dcarry` is the cotangent of the new carry without its `h` part, `dh` the whole
#   cotangent of the new `h` (carry and output). `dhw` is the cotangent of `h W_h`,
#   None where it equals `dz` (LSTM, Elman).
#   Residuals must include the incoming `h` as their first entry (for dW_h).


def _lstm_forward(params, carry, z):
  c, h = carry
  i, f, g, o = _split_gates(z + h @ params["w_h"], 4)
  i, f, g, o = base.fast_sigmoid(i), base.fast_sigmoid(f), jnp.tanh(g), base.fast_sigmoid(o)
  c_new = f * c + i * g
  tanh_c = jnp.tanh(c_new)
  h_new = o * tanh_c
  return LSTMState(c_new, h_new), h_new, (h, c, i, f, g, o, tanh_c)


def _lstm_backward(params, w_hT, residuals, dcarry, dh):
  del params
  _, c, i, f, g, o, tanh_c = residuals
  dc = dcarry.c + dh * o * (1.0 - tanh_c * tanh_c)
  dz = jnp.concatenate([dc * g * _dsigmoid(i), dc * c * _dsigmoid(f), dc * i * (1.0 - g * g),
                        dh * tanh_c * _dsigmoid(o)], axis=-1)
  return LSTMState(dc * f, dz @ w_hT), dz, None


def _lstm_carry_h(carry):
  return carry.h


def _lstm_with_h(carry, h):
  return LSTMState(carry.c, h)


def _gru_forward(params, h, z):
  xr, xz, xn = _split_gates(z, 3)
  hr, hz, hn = _split_gates(h @ params["w_h"], 3)
  r = base.fast_sigmoid(xr + hr)
  u = base.fast_sigmoid(xz + hz)
  hn_b = hn + base.along_last(params["b_hn"], hn)
  n = jnp.tanh(xn + r * hn_b)
  h_new = n + u * (h - n)
  return h_new, h_new, (h, r, u, n, hn_b)


def _gru_backward(params, w_hT, residuals, dcarry, dh):
  del params, dcarry  # the carry is h itself: all of its cotangent is in dh
  h, r, u, n, hn_b = residuals
  da_n = dh * (1.0 - u) * (1.0 - n * n)
  da_r = da_n * hn_b * _dsigmoid(r)
  da_u = dh * (h - n) * _dsigmoid(u)
  dz = jnp.concatenate([da_r, da_u, da_n], axis=-1)
  dhw = jnp.concatenate([da_r, da_u, da_n * r], axis=-1)
  return dh * u + dhw @ w_hT, dz, dhw


def _elman_derivative_tanh(h):
  return 1.0 - h * h


def _elman_derivative_relu(h):
  return (h > 0).astype(h.dtype)


_ELMAN_DERIVATIVES = {"tanh": _elman_derivative_tanh, "relu": _elman_derivative_relu}
_ELMAN_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def _elman_forward(activation, params, h, z):
  h_new = _ELMAN_ACTIVATIONS[activation](z + h @ params["w_h"])
  return h_new, h_new, (h, h_new)


def _elman_backward(activation, params, w_hT, residuals, dcarry, dh):
  del params, dcarry
  _, h_new = residuals
  dz = dh * _ELMAN_DERIVATIVES[activation](h_new)
  return dz @ w_hT, dz, None


def _identity_h(carry):
  return carry


def _replace_h(carry, h):
  del carry
  return h


class _Family(NamedTuple):
  forward: Callable
  backward: Callable
  carry_h: Callable          # the h inside a carry
  with_h: Callable           # the carry with its h replaced
  extra_params: tuple        # params besides w_h that the recurrence reads (gradients summed from dhw)


def _family(cell: base.Cell) -> _Family:
  if isinstance(cell, LSTM):
    return _Family(_lstm_forward, _lstm_backward, _lstm_carry_h, _lstm_with_h, ())
  if isinstance(cell, GRU):
    return _Family(_gru_forward, _gru_backward, _identity_h, _replace_h, ("b_hn",))
  return _Family(functools.partial(_elman_forward, cell.activation),
                 functools.partial(_elman_backward, cell.activation), _identity_h, _replace_h, ())


def _where(mask, new, old):
  return jax.tree.map(lambda a, b: jnp.where(mask, a, b), new, old)


def _mask_at(t, lengths_B, like_BxH):
  """`[B, 1]` True where step `t` is inside the sequence."""
  return jnp.reshape(t < lengths_B, (like_BxH.shape[0], 1))


@functools.lru_cache(maxsize=None)
def _make_recurrence(cell: base.Cell, reverse: bool, masked: bool, unroll: int):
  """The custom-VJP recurrence `(rec_params, z, carry, lengths) -> (carry, ys)` for one configuration."""
  family = _family(cell)

  def forward_scan(rec_params, z_TxBxG, carry, lengths_B):
    steps = z_TxBxG.shape[0]

    def body(carry, t_and_z):
      t, z_BxG = t_and_z
      new_carry, h_BxH, residuals = family.forward(rec_params, carry, z_BxG)
      if masked:
        mask = _mask_at(t, lengths_B, h_BxH)
        new_carry = _where(mask, new_carry, carry)
        h_BxH = jnp.where(mask, h_BxH, 0)
      return new_carry, (h_BxH, residuals)

    return jax.lax.scan(body, carry, (jnp.arange(steps), z_TxBxG), reverse=reverse, unroll=unroll)

  @jax.custom_vjp
  def recurrence(rec_params, z_TxBxG, carry, lengths_B):
    carry, (ys_TxBxH, _) = forward_scan(rec_params, z_TxBxG, carry, lengths_B)
    return carry, ys_TxBxH

  def recurrence_fwd(rec_params, z_TxBxG, carry, lengths_B):
    carry, (ys_TxBxH, residuals) = forward_scan(rec_params, z_TxBxG, carry, lengths_B)
    return (carry, ys_TxBxH), (rec_params, residuals, lengths_B)

  def recurrence_bwd(saved, cotangents):
    rec_params, residuals, lengths_B = saved
    dcarry, dys_TxBxH = cotangents
    w_hT = rec_params["w_h"].T
    steps = dys_TxBxH.shape[0]

    def body(dcarry, inputs):
      t, dy_BxH, step_residuals = inputs
      dh_BxH = family.carry_h(dcarry) + dy_BxH
      if masked:  # padded steps pass the carry's cotangent straight through
        mask = _mask_at(t, lengths_B, dy_BxH)
        passed = _where(mask, jax.tree.map(jnp.zeros_like, dcarry), dcarry)
        dcarry = _where(mask, dcarry, jax.tree.map(jnp.zeros_like, dcarry))
        dh_BxH = jnp.where(mask, dh_BxH, 0)
      dprev, dz_BxG, dhw_BxG = family.backward(rec_params, w_hT, step_residuals, dcarry, dh_BxH)
      if masked:
        dprev = jax.tree.map(jnp.add, dprev, passed)
      return dprev, (dz_BxG, dhw_BxG)

    dcarry, (dz_TxBxG, dhw_TxBxG) = jax.lax.scan(
        body, dcarry, (jnp.arange(steps), dys_TxBxH, residuals), reverse=not reverse, unroll=unroll)
    # All weight gradients as single matmuls over the T*B rows (the point of this module),
    # accumulated in at least float32 (bfloat16 params).
    h_in_TxBxH = residuals[0]
    dhw_TxBxG = dz_TxBxG if dhw_TxBxG is None else dhw_TxBxG
    w_dtype = rec_params["w_h"].dtype
    acc = jnp.promote_types(w_dtype, jnp.float32)
    grads = {"w_h": jnp.einsum("tbh,tbg->hg", h_in_TxBxH, dhw_TxBxG, preferred_element_type=acc).astype(w_dtype)}
    if "b_hn" in family.extra_params:
      hidden = rec_params["w_h"].shape[0]
      grads["b_hn"] = jnp.sum(dhw_TxBxG[..., 2 * hidden:], axis=(0, 1), dtype=acc).astype(w_dtype)
    return grads, dz_TxBxG, dcarry, None

  recurrence.defvjp(recurrence_fwd, recurrence_bwd)
  return recurrence


def run(cell: base.Cell, params: Any, z_TxBxG: jax.Array, carry: Any, *, lengths: jax.Array | None = None,
        reverse: bool = False, unroll: int = 1):
  """The recurrence of `cell` over hoisted inputs `z_TxBxG = cell.project(params, x_TxBxI)`.

  Args:
    carry: the initial carry for batch `(B,)`.
    lengths: optional `[B]` valid lengths; padded steps keep the carry and output zeros.
  Returns:
    `(final_carry, ys_TxBxH)`, as `scan.run(..., hoist=True, time_major=True)`.
  Raises:
    ValueError: for a cell or option `unsupported_reason` names.
  """
  reason = unsupported_reason(cell)
  if reason is not None:
    raise ValueError(f"fused backward unavailable: {reason}")
  family = _family(cell)
  rec_params = {"w_h": params["w_h"], **{name: params[name] for name in family.extra_params}}
  masked = lengths is not None
  lengths_B = lengths if masked else jnp.zeros((z_TxBxG.shape[1],), jnp.int32)
  recurrence = _make_recurrence(cell, reverse, masked, unroll)
  return recurrence(rec_params, z_TxBxG, carry, lengths_B)
