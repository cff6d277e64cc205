"""Sequence tasks by shape, each a few lines over library parts.

  N -> N  tagging (`train_tagger`): every token of a variable-length sequence gets the
          label max(x[t-1], x[t], x[t+1]), which needs both neighbours, so a
          bidirectional LSTM (`scan.run_bidirectional` with `lengths`) is the model;
          a forward-only LSTM is the control.
  N -> 1  classification (`train_classifier`): which of three symbols is most frequent
          in a variable-length sequence (ties to the smallest); a GRU's final carry
          (`scan.run` with `lengths`: the carry at each sequence's own last step).
  1 -> N  generation (`train_decoder`): from one vector encoding (start a, step d,
          length L), emit a, a+d, ..., a+(L-1)d mod 10 and EOS; an LSTM decoder whose
          initial carry is computed from the vector, trained with teacher forcing
          (`scan.run` over [BOS, y1, ...]) and decoded with `decoding.greedy`.

Each returns its held-out metrics. Launcher: experiments/shapes/main.py.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnn_jax import cells, decoding, ops, scan


def _fit(loss_fn, params, batch_fn, steps, learning_rate):
  """Adam with clipping; `batch_fn(step)` gives the batch; returns the trained params."""
  optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(learning_rate))

  @jax.jit
  def train_step(params, opt_state, step):
    grads = jax.grad(loss_fn)(params, batch_fn(step))
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  opt_state = optimizer.init(params)
  for step in range(steps):
    params, opt_state = train_step(params, opt_state, step)
  return params


def _random_lengths(key, batch, min_length, max_length):
  return jax.random.randint(key, (batch,), min_length, max_length + 1)


# ----------------------------------------------------------------------------- N -> N
def tagging_batch(key, batch=64, max_length=20, vocab=10):
  """`(x_BxT, labels_BxT, lengths_B)`: label = max of the token and its in-sequence neighbours."""
  k_x, k_len = jax.random.split(key)
  lengths_B = _random_lengths(k_len, batch, 3, max_length)
  valid_BxT = ops.mask_from_lengths(lengths_B, max_length)
  x_BxT = jnp.where(valid_BxT, jax.random.randint(k_x, (batch, max_length), 0, vocab), 0)
  neighbours_BxT = jnp.maximum(jnp.pad(x_BxT[:, :-1], ((0, 0), (1, 0))), jnp.pad(x_BxT[:, 1:], ((0, 0), (0, 1))))
  return x_BxT, jnp.where(valid_BxT, jnp.maximum(x_BxT, neighbours_BxT), 0), lengths_B


def train_tagger(steps=1500, bidirectional=True, hidden=32, seed=0, learning_rate=1e-2) -> dict:
  """N -> N: per-token accuracy of a (bi)directional LSTM tagger on held-out sequences."""
  cell, vocab = cells.get("lstm"), 10
  keys = jax.random.split(jax.random.key(seed), 4)
  rnn = ({"forward": cell.init(keys[0], vocab, hidden), "backward": cell.init(keys[1], vocab, hidden)}
         if bidirectional else cell.init(keys[0], vocab, hidden))
  width = 2 * hidden if bidirectional else hidden
  params = {"rnn": rnn, "w": jax.random.normal(keys[2], (width, vocab)) / np.sqrt(width), "b": jnp.zeros((vocab,))}

  def logits(params, x_BxT, lengths_B):
    inputs_BxTxV = jax.nn.one_hot(x_BxT, vocab)
    run = scan.run_bidirectional if bidirectional else scan.run
    _, ys_BxTxW = run(cell, params["rnn"], inputs_BxTxV, lengths=lengths_B)
    return ys_BxTxW @ params["w"] + params["b"][None, None]

  def loss_fn(params, batch):
    x_BxT, labels_BxT, lengths_B = batch
    valid_BxT = ops.mask_from_lengths(lengths_B, x_BxT.shape[1])
    losses = optax.softmax_cross_entropy_with_integer_labels(logits(params, x_BxT, lengths_B), labels_BxT)
    return jnp.sum(jnp.where(valid_BxT, losses, 0)) / jnp.sum(valid_BxT)

  params = _fit(loss_fn, params, lambda s: tagging_batch(jax.random.fold_in(keys[3], s)), steps, learning_rate)
  x_BxT, labels_BxT, lengths_B = tagging_batch(jax.random.key(10_000 + seed), batch=2000)
  valid_BxT = ops.mask_from_lengths(lengths_B, x_BxT.shape[1])
  correct_BxT = jnp.argmax(logits(params, x_BxT, lengths_B), -1) == labels_BxT
  return {"token_accuracy": float(jnp.sum(correct_BxT & valid_BxT) / jnp.sum(valid_BxT))}


# ----------------------------------------------------------------------------- N -> 1
def classification_batch(key, batch=64, max_length=30, symbols=3):
  """`(x_BxT, label_B, lengths_B)`: the most frequent symbol (ties to the smallest); 0-padded, symbols 1..3."""
  k_x, k_len = jax.random.split(key)
  lengths_B = _random_lengths(k_len, batch, 5, max_length)
  valid_BxT = ops.mask_from_lengths(lengths_B, max_length)
  x_BxT = jnp.where(valid_BxT, jax.random.randint(k_x, (batch, max_length), 1, symbols + 1), 0)
  counts_BxS = jnp.sum(jax.nn.one_hot(x_BxT, symbols + 1)[..., 1:], axis=1)
  return x_BxT, jnp.argmax(counts_BxS, axis=-1), lengths_B


def train_classifier(steps=1500, hidden=32, seed=0, learning_rate=1e-2) -> dict:
  """N -> 1: accuracy of a GRU sequence classifier on held-out sequences."""
  cell, vocab, classes = cells.get("gru"), 4, 3
  keys = jax.random.split(jax.random.key(seed), 3)
  params = {"rnn": cell.init(keys[0], vocab, hidden), "w": jax.random.normal(keys[1], (hidden, classes)) / 6.0,
            "b": jnp.zeros((classes,))}

  def logits(params, x_BxT, lengths_B):
    carry, _ = scan.run(cell, params["rnn"], jax.nn.one_hot(x_BxT, vocab), lengths=lengths_B)
    return cell.carry_hidden(carry) @ params["w"] + params["b"][None]

  def loss_fn(params, batch):
    x_BxT, label_B, lengths_B = batch
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits(params, x_BxT, lengths_B), label_B))

  params = _fit(loss_fn, params, lambda s: classification_batch(jax.random.fold_in(keys[2], s)), steps,
                learning_rate)
  x_BxT, label_B, lengths_B = classification_batch(jax.random.key(10_000 + seed), batch=2000)
  majority = float(np.bincount(np.asarray(label_B)).max() / len(label_B))
  return {"accuracy": float(jnp.mean(jnp.argmax(logits(params, x_BxT, lengths_B), -1) == label_B)),
          "majority_class": majority}


# ----------------------------------------------------------------------------- 1 -> N
BOS, EOS, DECODER_VOCAB, MAX_OUTPUT = 10, 11, 12, 11


def decoding_batch(key, batch=64):
  """`(v_Bx28, inputs_BxT, targets_BxT, lengths_B)`: v = one-hot start, step and length (3..10).

  The output is start, start + step, ... (length digits, mod 10) then EOS; `inputs` is
  BOS followed by the targets (teacher forcing); `lengths` counts the EOS.
  """
  k_a, k_d, k_len = jax.random.split(key, 3)
  start_B, step_B = jax.random.randint(k_a, (batch,), 0, 10), jax.random.randint(k_d, (batch,), 0, 10)
  digits_B = jax.random.randint(k_len, (batch,), 3, MAX_OUTPUT)
  vector_Bx28 = jnp.concatenate([jax.nn.one_hot(start_B, 10), jax.nn.one_hot(step_B, 10),
                                 jax.nn.one_hot(digits_B - 3, 8)], axis=-1)
  positions_T = jnp.arange(MAX_OUTPUT)
  series_BxT = (start_B[:, None] + positions_T[None, :] * step_B[:, None]) % 10
  targets_BxT = jnp.where(positions_T[None, :] < digits_B[:, None], series_BxT,
                          jnp.where(positions_T[None, :] == digits_B[:, None], EOS, 0))
  inputs_BxT = jnp.concatenate([jnp.full((batch, 1), BOS), targets_BxT[:, :-1]], axis=1)
  return vector_Bx28, inputs_BxT, targets_BxT, digits_B + 1


def _decoder_carry(cell, params, vector_Bx28):
  h_BxH = jnp.tanh(vector_Bx28 @ params["w_init"])
  return cell.initial_carry(params["rnn"], (vector_Bx28.shape[0],))._replace(h=h_BxH)


def _decoder_step(cell, params, carry, token_B):
  """The `decoding.greedy` step: `(carry, token) -> (carry, log_probs, attention)` (no attention)."""
  carry, h_BxH = cell.step(params["rnn"], carry, params["embed"][token_B])
  log_probs = jax.nn.log_softmax(h_BxH @ params["w"] + params["b"][None])
  return carry, log_probs, jnp.zeros((token_B.shape[0], 1))


def train_decoder(steps=1500, hidden=64, seed=0, learning_rate=1e-2) -> dict:
  """1 -> N: exact-match rate of greedy decoding from the vector alone, on held-out vectors."""
  cell = cells.get("lstm")
  keys = jax.random.split(jax.random.key(seed), 5)
  params = {"w_init": jax.random.normal(keys[0], (28, hidden)) / np.sqrt(28),
            "embed": jax.random.normal(keys[1], (DECODER_VOCAB, hidden)) / np.sqrt(hidden),
            "rnn": cell.init(keys[2], hidden, hidden),
            "w": jax.random.normal(keys[3], (hidden, DECODER_VOCAB)) / np.sqrt(hidden),
            "b": jnp.zeros((DECODER_VOCAB,))}

  def loss_fn(params, batch):
    vector_Bx28, inputs_BxT, targets_BxT, lengths_B = batch
    carry = _decoder_carry(cell, params, vector_Bx28)
    _, ys_BxTxH = scan.run(cell, params["rnn"], params["embed"][inputs_BxT], initial_carry=carry, lengths=lengths_B)
    losses = optax.softmax_cross_entropy_with_integer_labels(ys_BxTxH @ params["w"] + params["b"][None, None],
                                                             targets_BxT)
    valid_BxT = ops.mask_from_lengths(lengths_B, targets_BxT.shape[1])
    return jnp.sum(jnp.where(valid_BxT, losses, 0)) / jnp.sum(valid_BxT)

  params = _fit(loss_fn, params, lambda s: decoding_batch(jax.random.fold_in(keys[4], s)), steps, learning_rate)
  vector_Bx28, _, targets_BxT, lengths_B = decoding_batch(jax.random.key(10_000 + seed), batch=1000)
  decoded = decoding.greedy(functools.partial(_decoder_step, cell), params, _decoder_carry(cell, params, vector_Bx28),
                            bos_id=BOS, eos_id=EOS, max_length=MAX_OUTPUT)
  exact_B = jnp.all(decoded.tokens == targets_BxT, axis=1) & (decoded.lengths == lengths_B)
  return {"exact_match": float(jnp.mean(exact_B))}
