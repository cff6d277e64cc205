"""Attention over a padded memory (encoder states), as pure functions of param pytrees.

  params = attention.init(key, "bahdanau", query_size=Q, memory_size=M, attention_size=A)
  keys_BxSxA = attention.prepare("bahdanau", params, memory_BxSxM)    # once per source
  mask_BxS = rnn_jax.ops.mask_from_lengths(memory_lengths_B, S)
  context_BxM, weights_BxS = attention.attend("bahdanau", params, query_BxQ, memory_BxSxM,
                                              keys_BxSxA, mask_BxS)

Score functions (`e_j` for memory position `j`, query `q`, memory vector `m_j`):
  bahdanau      (additive, Bahdanau et al. 2014):  e_j = v . tanh(q W_q + m_j W_k + b)
  luong_dot     (Luong et al. 2015):               e_j = q . m_j            (needs Q == M)
  luong_general (Luong et al. 2015):               e_j = q . (m_j W_a)

`prepare` does the query-independent part (`m W_k + b`, `m W_a`) once per source, so a
decoder step costs one `[B, Q] x [Q, A]` matmul plus the scores. Weights are a softmax
over the valid positions (`mask` True) and exactly zero on padding; a row with no valid
position gets all-zero weights and a zero context.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from rnn_jax.layers import glorot_uniform
from rnn_jax.ops import along_last

Params = Any
KINDS = ("bahdanau", "luong_dot", "luong_general")


def _check_kind(kind: str):
  if kind not in KINDS:
    raise ValueError(f"unknown attention {kind!r}; expected one of {KINDS}")


def init(key: jax.Array, kind: str, query_size: int, memory_size: int, attention_size: int | None = None
         ) -> Params:
  """Params for `kind`; `attention_size` (A) is the width of the additive layer (bahdanau only)."""
  _check_kind(kind)
  if kind == "luong_dot":
    if query_size != memory_size:
      raise ValueError(f"luong_dot needs query size == memory size, got {query_size} and {memory_size}")
    return {}
  if kind == "luong_general":
    return {"w_a": glorot_uniform(key, (memory_size, query_size))}
  if attention_size is None:
    raise ValueError("bahdanau attention needs an attention_size")
  kq, kk, kv = jax.random.split(key, 3)
  return {"w_q": glorot_uniform(kq, (query_size, attention_size)),
          "w_k": glorot_uniform(kk, (memory_size, attention_size)),
          "b": jnp.zeros((attention_size,)),
          "v": jax.random.normal(kv, (attention_size,)) / jnp.sqrt(attention_size)}


def prepare(kind: str, params: Params, memory_BxSxM: jax.Array) -> jax.Array:
  """The query-independent keys: `[B, S, A]` (bahdanau), `[B, S, Q]` (general), the memory (dot)."""
  _check_kind(kind)
  if kind == "bahdanau":
    keys = memory_BxSxM @ params["w_k"]
    return keys + along_last(params["b"], keys)
  if kind == "luong_general":
    return memory_BxSxM @ params["w_a"]
  return memory_BxSxM


def scores(kind: str, params: Params, query_BxQ: jax.Array, keys_BxSxK: jax.Array) -> jax.Array:
  """Unnormalised scores `[B, S]` from a query and `prepare`d keys."""
  _check_kind(kind)
  if kind == "bahdanau":
    hidden_BxSxA = jnp.tanh(keys_BxSxK + (query_BxQ @ params["w_q"])[:, None, :])
    return hidden_BxSxA @ params["v"]
  return jnp.einsum("bq,bsq->bs", query_BxQ, keys_BxSxK)


def masked_softmax(scores_BxS: jax.Array, mask_BxS: jax.Array) -> jax.Array:
  """Softmax over the True positions; exactly 0 elsewhere (all 0 for an all-False row)."""
  masked_BxS = jnp.where(mask_BxS, scores_BxS, jnp.finfo(scores_BxS.dtype).min)
  peak_Bx1 = jax.lax.stop_gradient(jnp.max(masked_BxS, axis=-1, keepdims=True))
  exp_BxS = jnp.where(mask_BxS, jnp.exp(masked_BxS - peak_Bx1), 0.0)
  total_Bx1 = jnp.sum(exp_BxS, axis=-1, keepdims=True)
  return exp_BxS / jnp.where(total_Bx1 > 0, total_Bx1, 1.0)


def attend(kind: str, params: Params, query_BxQ: jax.Array, memory_BxSxM: jax.Array,
           keys_BxSxK: jax.Array, mask_BxS: jax.Array):
  """One attention read: `(context_BxM, weights_BxS)`; weights sum to 1 over valid positions."""
  weights_BxS = masked_softmax(scores(kind, params, query_BxQ, keys_BxSxK), mask_BxS)
  context_BxM = jnp.einsum("bs,bsm->bm", weights_BxS, memory_BxSxM)
  return context_BxM, weights_BxS


__all__ = ["KINDS", "init", "prepare", "scores", "masked_softmax", "attend"]
