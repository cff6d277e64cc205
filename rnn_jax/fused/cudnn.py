"""The LSTM layer through cuDNN (`jax.experimental.rnn.lstm`), with params in rnn_jax's layout.

  carry, ys_BxTxH = cudnn.run(params, xs_BxTxI, carry, lengths=lengths_B, reverse=False)
  (carry_f, carry_b), ys_BxTx2H = cudnn.run_bidirectional(params_f, params_b, xs_BxTxI, carries)

`scan.run(..., backward="cudnn")` routes here (and `backward="auto"` on GPU where
`policy.cudnn_pays`). The layer computes what `scan.run` computes for `cells.get("lstm")`:
rnn_jax's `w_x [I, 4H]`, `w_h [H, 4H]` and `b [4H]` (gates i, f, g, o, as cuDNN) are packed
into cuDNN's flat weight vector at the boundary (`pack`: `W_ih = w_x^T`, `W_hh = w_h^T`,
`b_ih = b`, `b_hh = 0`), so gradients flow back to rnn_jax's params through that packing.
Right-padded `lengths` are cuDNN's sequence lengths: padded steps output zeros and the final
carry is each sequence's last valid one; `reverse` reads each sequence from its own last
valid step, as `scan.run` does. cuDNN runs float32 (TF32 products unless
`jax_default_matmul_precision` is "highest"); it needs a CUDA GPU.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp

from rnn_jax.cells import base
from rnn_jax.cells.lstm import LSTM, LSTMState


def unsupported_reason(cell: base.Cell, params: Any = None, remat: bool = False) -> str | None:
  """None if `run` computes `cell` exactly, else why not."""
  if type(cell) is not LSTM:  # pylint: disable=unidiomatic-typecheck  (a subclass may change `recur`)
    return f"cuDNN runs only the plain LSTM, not cell {cell.name!r}"
  if cell.peepholes or cell.layer_norm or cell.cell_clip:
    return "cuDNN's LSTM has no peepholes, layer norm or cell clip"
  if cell.matmul_dtype is not None and jnp.dtype(cell.matmul_dtype) != jnp.float32:
    return f"jax.experimental.rnn runs float32 only, not matmul_dtype={cell.matmul_dtype!r}"
  if params is not None and any(jnp.result_type(w) != jnp.float32 for w in jax.tree.leaves(params)):
    return "jax.experimental.rnn runs float32 params only"
  if remat:
    return "cuDNN keeps its own activations: no remat"
  return None


def pack(params_per_direction: Sequence[dict]) -> jax.Array:
  """rnn_jax LSTM params (one dict per cuDNN pseudo-layer: forward, then backward) as cuDNN's
  flat weight vector: every `(W_ih, W_hh)` pair, then every `(b_ih, b_hh)` pair."""
  weights = [w for p in params_per_direction for w in (p["w_x"].T, p["w_h"].T)]
  biases = [b for p in params_per_direction for b in (p["b"], jnp.zeros_like(p["b"]))]
  return jnp.concatenate([jnp.ravel(a) for a in weights + biases])


def lstm(x_BxTxI, h0_DxBxH, c0_DxBxH, weights, lengths_B, *, input_size: int, hidden_size: int,
         bidirectional: bool):
  """One cuDNN LSTM layer: `(ys_BxTx(DH), h_DxBxH, c_DxBxH)` (D directions). Tests replace it with
  `jax.experimental.rnn.lstm_ref`, the library's pure-JAX reference for the same layout."""
  from jax.experimental import rnn as jax_rnn  # pylint: disable=g-import-not-at-top
  return jax_rnn.lstm(x_BxTxI, h0_DxBxH, c0_DxBxH, weights, lengths_B, input_size=input_size,
                      hidden_size=hidden_size, num_layers=1, dropout=0.0, bidirectional=bidirectional)


def _lengths(lengths, xs_BxTxI):
  batch, steps = xs_BxTxI.shape[:2]
  return jnp.full((batch,), steps, jnp.int32) if lengths is None else jnp.asarray(lengths, jnp.int32)


def _call(params_per_direction, xs_BxTxI, carries, lengths_B):
  """The cuDNN call over stacked per-direction carries; returns `(carries, ys)`."""
  c0 = jnp.stack([c.c for c in carries]).astype(jnp.float32)
  h0 = jnp.stack([c.h for c in carries]).astype(jnp.float32)
  input_size, hidden_size = params_per_direction[0]["w_x"].shape[0], params_per_direction[0]["w_h"].shape[0]
  ys, h_n, c_n = lstm(xs_BxTxI.astype(jnp.float32), h0, c0, pack(params_per_direction), lengths_B,
                      input_size=input_size, hidden_size=hidden_size, bidirectional=len(params_per_direction) == 2)
  return [LSTMState(c_n[d], h_n[d]) for d in range(len(carries))], ys


def _flip(xs_BxTxK, lengths_B):
  """Each sequence reversed within its own length (padding stays at the end)."""
  steps = xs_BxTxK.shape[1]
  index_BxT = lengths_B[:, None] - 1 - jnp.arange(steps)[None, :]
  index_BxT = jnp.where(index_BxT >= 0, index_BxT, jnp.arange(steps)[None, :])
  return jnp.take_along_axis(xs_BxTxK, index_BxT[..., None], axis=1)


def run(params: dict, xs_BxTxI: jax.Array, carry: LSTMState, *, lengths=None, reverse: bool = False):
  """One direction: `(final_carry, ys_BxTxH)` as `scan.run(lstm, params, xs, ...)`."""
  lengths_B = _lengths(lengths, xs_BxTxI)
  if reverse:
    xs_BxTxI = _flip(xs_BxTxI, lengths_B)
  (carry,), ys_BxTxH = _call([params], xs_BxTxI, [carry], lengths_B)
  return carry, (_flip(ys_BxTxH, lengths_B) if reverse else ys_BxTxH)


def run_bidirectional(params_forward: dict, params_backward: dict, xs_BxTxI: jax.Array, carries, *, lengths=None):
  """Both directions in one cuDNN call: `((carry_f, carry_b), ys_BxTx2H)`, the backward half
  aligned with the inputs, as `scan.run_bidirectional(..., merge="concat")`."""
  (carry_f, carry_b), ys = _call([params_forward, params_backward], xs_BxTxI, list(carries),
                                 _lengths(lengths, xs_BxTxI))
  return (carry_f, carry_b), ys

