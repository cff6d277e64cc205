"""Greedy and batched beam search over any autoregressive step function, jit-compiled.

The model is a pure step function (static, hashable: a module-level function or a
`functools.partial` built once, not a fresh lambda per call, to reuse the compilation):

  state, log_probs_BxV, attention_BxS = step_fn(params, state, token_B)

`state` is any pytree whose leaves all have the batch as their leading axis (decoder
carries, encoder memory, masks, ...); `log_probs` are normalised next-token log
probabilities after reading `token` (the first call reads `bos_id`); `attention` is what
the step attended to (`[B, S]`; a model without attention may return zeros `[B, 1]`).

  out = greedy(step_fn, params, state, bos_id=1, eos_id=2, max_length=50)
  out = beam_search(step_fn, params, state, beam_size=5, alpha=0.6, bos_id=1, eos_id=2,
                    max_length=50, max_lengths=relative_max_lengths(src_len_B, 2.0, 10, 50))

Lengths count emitted tokens including the EOS. A hypothesis that reaches its maximum
length (`max_lengths[b]`, at most the static buffer `max_length`) is forced to emit EOS
there (with the model's EOS log probability), as in fairseq, so every output ends in EOS.
Beam scores are `log_prob / length_penalty(length, alpha)` with the GNMT penalty
`((5 + length) / 6) ** alpha` (Wu et al. 2016); `alpha = 0` ranks by log probability.
Beam search expands the `2K` best candidates per sentence, moves those ending in EOS among
the `K` best into the finished set (so `beam_size=1` is exactly greedy at `alpha=0`), and
stops a sentence once no live hypothesis can beat its `K` finished ones.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

StepFn = Callable[[Any, Any, jax.Array], tuple[Any, jax.Array, jax.Array]]


class Decoded(NamedTuple):
  """Decoder output; greedy shapes shown, beam search adds a beam axis `K` after `B`, best first."""
  tokens: jax.Array     # [B, T] int32, `pad_id` after the EOS
  lengths: jax.Array    # [B] tokens emitted, EOS included
  log_probs: jax.Array  # [B] sum of the emitted tokens' log probabilities
  scores: jax.Array     # [B] log_probs / length_penalty(lengths, alpha)
  attention: jax.Array  # [B, T, S] attention weights of each emitted token, 0 after the EOS


def length_penalty(lengths: jax.Array, alpha: float) -> jax.Array:
  """GNMT length penalty `((5 + L) / 6) ** alpha` (1 at `alpha = 0`)."""
  return ((5.0 + lengths) / 6.0) ** alpha


def relative_max_lengths(source_lengths_B: jax.Array, ratio: float, offset: int, max_length: int) -> jax.Array:
  """Per-sentence output limits `min(ratio * source_length + offset, max_length)`, at least 1."""
  limit_B = jnp.floor(ratio * source_lengths_B).astype(jnp.int32) + offset
  return jnp.clip(limit_B, 1, max_length)


def _batch_size(state) -> int:
  leaves = jax.tree.leaves(state)
  if not leaves:
    raise ValueError("the decoder state must have at least one array leaf with a leading batch axis")
  sizes = {leaf.shape[0] for leaf in leaves}
  if len(sizes) != 1:
    raise ValueError(f"all decoder state leaves must share the leading batch axis, got sizes {sorted(sizes)}")
  return sizes.pop()


def _force_eos(log_probs_NxV, force_N, eos_id):
  """Only EOS (with its own log probability) where `force_N`."""
  only_eos_NxV = jnp.where(jnp.arange(log_probs_NxV.shape[-1])[None, :] == eos_id, log_probs_NxV, -jnp.inf)
  return jnp.where(force_N[:, None], only_eos_NxV, log_probs_NxV)


def _limits(max_lengths, batch, max_length):
  if max_lengths is None:
    return jnp.full((batch,), max_length, jnp.int32)
  return jnp.clip(jnp.asarray(max_lengths, jnp.int32), 1, max_length)


def _attention_size(step_fn, params, state, batch):
  _, log_probs, attention = jax.eval_shape(step_fn, params, state, jnp.zeros((batch,), jnp.int32))
  if log_probs.ndim != 2 or attention.ndim != 2:
    raise ValueError(f"step_fn must return log_probs [B, V] and attention [B, S], got shapes "
                     f"{log_probs.shape} and {attention.shape}")
  return attention.shape[-1], attention.dtype


@functools.partial(jax.jit, static_argnames=("step_fn", "bos_id", "eos_id", "max_length", "pad_id"))
def greedy(step_fn: StepFn, params, state, *, bos_id: int, eos_id: int, max_length: int,
           max_lengths: jax.Array | None = None, pad_id: int = 0) -> Decoded:
  """Most likely next token at every step, until EOS (or the length limit) in every sentence."""
  batch = _batch_size(state)
  attn_size, attn_dtype = _attention_size(step_fn, params, state, batch)
  limits_B = _limits(max_lengths, batch, max_length)

  def cond(loop):
    t, _, _, done_B, *_ = loop
    return (t < max_length) & ~jnp.all(done_B)

  def body(loop):
    t, state, last_B, done_B, tokens_BxT, attn_BxTxS, log_prob_B, lengths_B = loop
    state, log_probs_BxV, attn_BxS = step_fn(params, state, last_B)
    log_probs_BxV = _force_eos(log_probs_BxV, t + 1 >= limits_B, eos_id)
    token_B = jnp.argmax(log_probs_BxV, axis=-1).astype(jnp.int32)
    token_log_prob_B = jnp.take_along_axis(log_probs_BxV, token_B[:, None], axis=-1)[:, 0]
    active_B = ~done_B
    tokens_BxT = tokens_BxT.at[:, t].set(jnp.where(active_B, token_B, pad_id))
    attn_BxTxS = attn_BxTxS.at[:, t].set(jnp.where(active_B[:, None], attn_BxS, 0))
    log_prob_B = log_prob_B + jnp.where(active_B, token_log_prob_B, 0.0)
    lengths_B = lengths_B + active_B.astype(jnp.int32)
    done_B = done_B | (token_B == eos_id)
    return t + 1, state, token_B, done_B, tokens_BxT, attn_BxTxS, log_prob_B, lengths_B

  loop = (jnp.int32(0), state, jnp.full((batch,), bos_id, jnp.int32), jnp.zeros((batch,), bool),
          jnp.full((batch, max_length), pad_id, jnp.int32), jnp.zeros((batch, max_length, attn_size), attn_dtype),
          jnp.zeros((batch,), jnp.float32), jnp.zeros((batch,), jnp.int32))
  *_, tokens_BxT, attn_BxTxS, log_prob_B, lengths_B = jax.lax.while_loop(cond, body, loop)
  return Decoded(tokens_BxT, lengths_B, log_prob_B, log_prob_B, attn_BxTxS)


def _gather_beams(x_BxNx, index_BxM):
  """`x[b, index[b, m]]` for an array with a beam axis 1: `[B, N, ...] -> [B, M, ...]`."""
  return jax.vmap(lambda x, i: x[i])(x_BxNx, index_BxM)


@functools.partial(jax.jit, static_argnames=("step_fn", "beam_size", "bos_id", "eos_id", "max_length",
                                             "pad_id"))
def beam_search(step_fn: StepFn, params, state, *, beam_size: int, bos_id: int, eos_id: int, max_length: int,
                max_lengths: jax.Array | None = None, alpha: float = 0.0, pad_id: int = 0) -> Decoded:
  """Batched beam search; returns the `beam_size` best finished hypotheses per sentence, best first."""
  batch, k = _batch_size(state), beam_size
  attn_size, attn_dtype = _attention_size(step_fn, params, state, batch)
  limits_B = _limits(max_lengths, batch, max_length)
  best_penalty_B = length_penalty(limits_B.astype(jnp.float32), alpha)
  state = jax.tree.map(lambda x: jnp.repeat(x, k, axis=0), state)  # sentence b, beam j -> row b * K + j
  neg_inf = jnp.float32(-jnp.inf)

  def cond(loop):
    t, alive, finished, _, _ = loop
    best_alive_B = jnp.max(alive["log_prob"], axis=1) / best_penalty_B
    worst_finished_B = jnp.min(finished["score"], axis=1)
    return (t < max_length) & ~jnp.all(worst_finished_B >= best_alive_B)

  def body(loop):
    t, alive, finished, state, last_N = loop
    state, log_probs_NxV, attn_NxS = step_fn(params, state, last_N)
    log_probs_NxV = _force_eos(log_probs_NxV, jnp.repeat(t + 1 >= limits_B, k), eos_id)
    vocab = log_probs_NxV.shape[-1]
    cand_BxKV = (alive["log_prob"][:, :, None] + log_probs_NxV.reshape(batch, k, vocab)).reshape(batch, k * vocab)
    top_lp_BxC, top_index_BxC = jax.lax.top_k(cand_BxKV, 2 * k)
    beam_BxC, token_BxC = top_index_BxC // vocab, (top_index_BxC % vocab).astype(jnp.int32)
    cand = {"tokens": _gather_beams(alive["tokens"], beam_BxC).at[:, :, t].set(token_BxC),
            "attention": _gather_beams(alive["attention"], beam_BxC).at[:, :, t].set(
                _gather_beams(attn_NxS.reshape(batch, k, attn_size), beam_BxC)),
            "log_prob": top_lp_BxC}
    is_eos_BxC = token_BxC == eos_id
    # Finished: EOS candidates among the K best, merged with the finished set, K best kept.
    new_score_BxC = jnp.where(is_eos_BxC & (jnp.arange(2 * k)[None, :] < k),
                              top_lp_BxC / length_penalty(t + 1.0, alpha), neg_inf)
    pool = {"tokens": jnp.concatenate([finished["tokens"], cand["tokens"]], axis=1),
            "attention": jnp.concatenate([finished["attention"], cand["attention"]], axis=1),
            "log_prob": jnp.concatenate([finished["log_prob"], top_lp_BxC], axis=1),
            "length": jnp.concatenate([finished["length"], jnp.full_like(top_lp_BxC, t + 1, jnp.int32)], axis=1),
            "score": jnp.concatenate([finished["score"], new_score_BxC], axis=1)}
    _, keep_BxK = jax.lax.top_k(pool["score"], k)
    finished = jax.tree.map(lambda x: _gather_beams(x, keep_BxK), pool)
    # Alive: the K best candidates that did not end.
    alive_lp_BxK, select_BxK = jax.lax.top_k(jnp.where(is_eos_BxC, neg_inf, top_lp_BxC), k)
    alive = {"tokens": _gather_beams(cand["tokens"], select_BxK),
             "attention": _gather_beams(cand["attention"], select_BxK),
             "log_prob": alive_lp_BxK}
    rows_N = (jnp.arange(batch)[:, None] * k + _gather_beams(beam_BxC, select_BxK)).reshape(-1)
    state = jax.tree.map(lambda x: x[rows_N], state)
    return t + 1, alive, finished, state, _gather_beams(token_BxC, select_BxK).reshape(-1)

  alive = {"tokens": jnp.full((batch, k, max_length), pad_id, jnp.int32),
           "attention": jnp.zeros((batch, k, max_length, attn_size), attn_dtype),
           "log_prob": jnp.zeros((batch, k)).at[:, 1:].set(neg_inf)}
  finished = {"tokens": alive["tokens"], "attention": alive["attention"],
              "log_prob": jnp.full((batch, k), neg_inf), "length": jnp.zeros((batch, k), jnp.int32),
              "score": jnp.full((batch, k), neg_inf)}
  loop = (jnp.int32(0), alive, finished, state, jnp.full((batch * k,), bos_id, jnp.int32))
  _, _, finished, _, _ = jax.lax.while_loop(cond, body, loop)
  return Decoded(finished["tokens"], finished["length"], finished["log_prob"], finished["score"],
                 finished["attention"])


def best(decoded: Decoded) -> Decoded:
  """The top hypothesis of a beam search result (drops the beam axis)."""
  return jax.tree.map(lambda x: x[:, 0], decoded)


__all__ = ["Decoded", "StepFn", "greedy", "beam_search", "best", "length_penalty", "relative_max_lengths"]
