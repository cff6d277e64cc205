"""The models of the shape examples, each a few lines over library parts.

  tagger (N -> N): an LSTM both ways (`rnn_jax.nn.RNN`, the flax.linen wrapper, with `lengths`) and a linear
    tagger; `tagger_forward` is the same forward only (the control: it cannot see x[t+1]).
  classifier (N -> 1): a GRU's final carry (`scan.run` with `lengths`: the carry at each sequence's own last
    step) and a linear classifier.
  decoder (1 -> N): an LSTM decoder whose initial carry is computed from one vector, trained with teacher
    forcing (`scan.run` over [BOS, y1, ...]) and decoded with `decoding.greedy`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnn_jax import cells, decoding, nn, scan

TAG_VOCAB = 10                    # tagger: symbols 0..9
CLASS_VOCAB, CLASSES = 4, 3       # classifier: padding 0 and symbols 1..3
BOS, EOS, DECODER_VOCAB, MAX_OUTPUT, VECTOR = 10, 11, 12, 11, 28  # decoder: digits, BOS, EOS; output length; input


def _masked_mean(losses_BxT, lengths_B):
  valid_BxT = jnp.arange(losses_BxT.shape[1])[None, :] < lengths_B[:, None]
  return jnp.sum(jnp.where(valid_BxT, losses_BxT, 0)) / jnp.sum(valid_BxT)


# ----------------------------------------------------------------------------- N -> N
def tagger_rnn(hidden: int, bidirectional: bool) -> nn.RNN:
  return nn.RNN(cell="lstm", hidden_size=hidden, bidirectional=bidirectional)


def init_tagger(key, hidden: int, bidirectional: bool) -> dict:
  k_rnn, k_w = jax.random.split(key)
  width = 2 * hidden if bidirectional else hidden
  rnn = tagger_rnn(hidden, bidirectional).init(k_rnn, jnp.zeros((1, 1, TAG_VOCAB)))
  return {"rnn": rnn, "w": jax.random.normal(k_w, (width, TAG_VOCAB)) / np.sqrt(width), "b": jnp.zeros((TAG_VOCAB,))}


def tagger_logits(hidden: int, bidirectional: bool, params, x_BxT, lengths_B):
  """`[B, T, 10]` per-token logits."""
  _, ys_BxTxW = tagger_rnn(hidden, bidirectional).apply(params["rnn"], jax.nn.one_hot(x_BxT, TAG_VOCAB),
                                                        lengths=lengths_B)
  return ys_BxTxW @ params["w"] + params["b"][None, None]


def tagger_loss(logits_fn, params, batch):
  losses_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_fn(params, batch["x"], batch["lengths"]),
                                                               batch["labels"])
  return _masked_mean(losses_BxT, batch["lengths"])


# ----------------------------------------------------------------------------- N -> 1
def init_classifier(key, hidden: int) -> dict:
  k_rnn, k_w = jax.random.split(key)
  return {"rnn": cells.get("gru").init(k_rnn, CLASS_VOCAB, hidden),
          "w": jax.random.normal(k_w, (hidden, CLASSES)) / 6.0, "b": jnp.zeros((CLASSES,))}


def classifier_logits(params, x_BxT, lengths_B):
  """`[B, 3]` logits from each sequence's final carry."""
  cell = cells.get("gru")
  carry, _ = scan.run(cell, params["rnn"], jax.nn.one_hot(x_BxT, CLASS_VOCAB), lengths=lengths_B)
  return cell.carry_hidden(carry) @ params["w"] + params["b"][None]


def classifier_loss(params, batch):
  logits_BxC = classifier_logits(params, batch["x"], batch["lengths"])
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits_BxC, batch["labels"]))


# ----------------------------------------------------------------------------- 1 -> N
def init_decoder(key, hidden: int) -> dict:
  keys = jax.random.split(key, 4)
  return {"w_init": jax.random.normal(keys[0], (VECTOR, hidden)) / np.sqrt(VECTOR),
          "embed": jax.random.normal(keys[1], (DECODER_VOCAB, hidden)) / np.sqrt(hidden),
          "rnn": cells.get("lstm").init(keys[2], hidden, hidden),
          "w": jax.random.normal(keys[3], (hidden, DECODER_VOCAB)) / np.sqrt(hidden),
          "b": jnp.zeros((DECODER_VOCAB,))}


def _decoder_carry(params, vector_BxV):
  h_BxH = jnp.tanh(vector_BxV @ params["w_init"])
  return cells.get("lstm").initial_carry(params["rnn"], (vector_BxV.shape[0],))._replace(h=h_BxH)


def _decoder_step(params, carry, token_B):
  """The `decoding.greedy` step: `(carry, token) -> (carry, log_probs, attention)` (no attention)."""
  carry, h_BxH = cells.get("lstm").step(params["rnn"], carry, params["embed"][token_B])
  log_probs = jax.nn.log_softmax(h_BxH @ params["w"] + params["b"][None])
  return carry, log_probs, jnp.zeros((token_B.shape[0], 1))


def decoder_loss(params, batch):
  """Teacher-forced cross-entropy over each sequence's digits and EOS."""
  carry = _decoder_carry(params, batch["vector"])
  _, ys_BxTxH = scan.run(cells.get("lstm"), params["rnn"], params["embed"][batch["inputs"]], initial_carry=carry,
                         lengths=batch["lengths"])
  logits_BxTxV = ys_BxTxH @ params["w"] + params["b"][None, None]
  losses_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, batch["targets"])
  return _masked_mean(losses_BxT, batch["lengths"])


@jax.jit
def decode_greedy(params, vector_BxV) -> decoding.Decoded:
  """Greedy decoding from the vector alone."""
  return decoding.greedy(_decoder_step, params, _decoder_carry(params, vector_BxV), bos_id=BOS, eos_id=EOS,
                         max_length=MAX_OUTPUT)


def tagger_fns(hidden: int, bidirectional: bool):
  """`(init(key), logits(params, x, lengths), loss(params, batch))` of a tagger."""
  logits = functools.partial(tagger_logits, hidden, bidirectional)
  return (functools.partial(init_tagger, hidden=hidden, bidirectional=bidirectional), logits,
          functools.partial(tagger_loss, logits))
