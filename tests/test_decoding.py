"""Greedy and beam search on a small random recurrent language model, against exhaustive search."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import decoding

V, EOS, BOS, H, S = 4, 3, 4, 6, 2  # tokens 0..3 (3 = EOS); BOS = 4 is an input-only token


def _params(seed=0, scale=2.0, eos_bias=0.0):
  k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
  return {"embed": scale * jax.random.normal(k1, (V + 1, H)),
          "w_h": jax.random.normal(k2, (H, H)) / np.sqrt(H),
          "out": scale * jax.random.normal(k3, (H, V)),
          "bias": jnp.zeros((V,)).at[EOS].set(eos_bias)}


def _step(params, state, token_B):
  """A toy decoder: the distribution depends on the whole history through `h`."""
  h_BxH = jnp.tanh(params["embed"][token_B] + state["h"] @ params["w_h"] + state["context"])
  logits_BxV = h_BxH @ params["out"]
  log_probs_BxV = jax.nn.log_softmax(logits_BxV + params["bias"][None, :])
  attention_BxS = jax.nn.softmax(h_BxH[:, :S])
  return {"h": h_BxH, "context": state["context"]}, log_probs_BxV, attention_BxS


def _state(batch, seed=1):
  return {"h": jnp.zeros((batch, H)), "context": jax.random.normal(jax.random.PRNGKey(seed), (batch, H))}


def _sequence_log_prob(params, state, tokens):
  """Sum of log-probabilities of `tokens` for a single sentence (batch 1), step by step."""
  total, token = 0.0, jnp.array([BOS])
  for t in tokens:
    state, log_probs, _ = _step(params, state, token)
    total += float(log_probs[0, t])
    token = jnp.array([t])
  return total


def _exhaustive(params, state, max_length, alpha):
  """All hypotheses (words then EOS, EOS forced at `max_length`), sorted by score, best first."""
  hyps = []
  for n in range(max_length):
    for words in itertools.product(range(V - 1), repeat=n):
      tokens = list(words) + [EOS]
      lp = _sequence_log_prob(params, state, tokens)
      hyps.append((lp / float(decoding.length_penalty(len(tokens), alpha)), lp, tokens))
  return sorted(hyps, key=lambda h: -h[0])


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_large_beam_is_exhaustive_search(alpha):
  """With a beam wide enough to keep every prefix, the finished set is every hypothesis, in score order."""
  params, max_length = _params(), 4
  state = _state(1)
  expected = _exhaustive(params, state, max_length, alpha)  # 1 + 3 + 9 + 27 = 40 hypotheses
  out = decoding.beam_search(_step, params, state, beam_size=len(expected), bos_id=BOS, eos_id=EOS,
                             max_length=max_length, alpha=alpha)
  np.testing.assert_allclose(out.scores[0], [h[0] for h in expected], rtol=1e-5)
  np.testing.assert_allclose(out.log_probs[0], [h[1] for h in expected], rtol=1e-5)
  for k, (_, _, tokens) in enumerate(expected[:10]):
    assert out.lengths[0, k] == len(tokens)
    assert list(np.asarray(out.tokens[0, k, :len(tokens)])) == tokens


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_small_beam_keeps_its_best_and_scores_are_exact(alpha):
  """For each sentence in a batch: the beam result is a real hypothesis whose reported score is its
  recomputed score, no better than the exhaustive optimum, at least as good as greedy's, and the same
  as decoding that sentence alone."""
  params, max_length, batch = _params(seed=2), 5, 4
  state = _state(batch, seed=3)
  beam = decoding.beam_search(_step, params, state, beam_size=3, bos_id=BOS, eos_id=EOS,
                              max_length=max_length, alpha=alpha)
  greedy = decoding.greedy(_step, params, state, bos_id=BOS, eos_id=EOS, max_length=max_length)
  found_better_than_greedy = False
  for b in range(batch):
    one = jax.tree.map(lambda x: x[b:b + 1], state)
    n = int(beam.lengths[b, 0])
    tokens = list(np.asarray(beam.tokens[b, 0, :n]))
    assert tokens[-1] == EOS and EOS not in tokens[:-1]
    assert np.all(np.asarray(beam.tokens[b, 0, n:]) == 0)
    lp = _sequence_log_prob(params, one, tokens)
    np.testing.assert_allclose(beam.log_probs[b, 0], lp, rtol=1e-5)
    np.testing.assert_allclose(beam.scores[b, 0], lp / float(decoding.length_penalty(n, alpha)), rtol=1e-5)
    assert np.all(np.diff(np.asarray(beam.scores[b])) <= 0)
    best_score = _exhaustive(params, one, max_length, alpha)[0][0]
    assert beam.scores[b, 0] <= best_score + 1e-5
    g = int(greedy.lengths[b])
    greedy_score = float(greedy.log_probs[b]) / float(decoding.length_penalty(g, alpha))
    assert beam.scores[b, 0] >= greedy_score - 1e-5
    found_better_than_greedy |= bool(beam.scores[b, 0] > greedy_score + 1e-4)
    alone = decoding.beam_search(_step, params, one, beam_size=3, bos_id=BOS, eos_id=EOS,
                                 max_length=max_length, alpha=alpha)
    np.testing.assert_array_equal(alone.tokens[0], beam.tokens[b])
    np.testing.assert_allclose(alone.scores[0], beam.scores[b], rtol=1e-5)
  assert found_better_than_greedy, "this toy model was chosen so that beam search beats greedy somewhere"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_size_one_is_greedy(seed):
  params, max_length, batch = _params(seed=seed), 8, 6
  state = _state(batch, seed=seed + 10)
  greedy = decoding.greedy(_step, params, state, bos_id=BOS, eos_id=EOS, max_length=max_length)
  beam = decoding.best(decoding.beam_search(_step, params, state, beam_size=1, bos_id=BOS, eos_id=EOS,
                                            max_length=max_length))
  for name in decoding.Decoded._fields:
    np.testing.assert_allclose(getattr(beam, name), getattr(greedy, name), rtol=1e-6, err_msg=name)


def test_greedy_against_step_by_step_argmax():
  params, max_length = _params(seed=4), 6
  state = _state(1, seed=5)
  out = decoding.greedy(_step, params, state, bos_id=BOS, eos_id=EOS, max_length=max_length)
  token, tokens, attn, s = jnp.array([BOS]), [], [], state
  for t in range(max_length):
    s, log_probs, a = _step(params, s, token)
    if t == max_length - 1:
      log_probs = jnp.where(jnp.arange(V) == EOS, log_probs, -jnp.inf)
    token = jnp.argmax(log_probs, axis=-1)
    tokens.append(int(token[0]))
    attn.append(a[0])
    if tokens[-1] == EOS:
      break
  n = len(tokens)
  assert int(out.lengths[0]) == n
  assert list(np.asarray(out.tokens[0, :n])) == tokens
  np.testing.assert_allclose(out.attention[0, :n], np.stack(attn), rtol=1e-5)
  np.testing.assert_array_equal(out.attention[0, n:], 0.0)


def test_per_sentence_max_lengths_force_eos():
  """A model that never wants EOS stops at each sentence's own limit, with EOS last."""
  params = _params(seed=6)
  params["out"] = params["out"].at[:, EOS].set(0.0)
  never_eos = functools.partial(_never_eos_step, params["out"])
  batch = 3
  limits = decoding.relative_max_lengths(jnp.array([1, 3, 10]), ratio=1.0, offset=1, max_length=7)
  np.testing.assert_array_equal(limits, [2, 4, 7])
  for out in (decoding.greedy(never_eos, params, _state(batch), bos_id=BOS, eos_id=EOS, max_length=7,
                              max_lengths=limits),
              decoding.best(decoding.beam_search(never_eos, params, _state(batch), beam_size=2, bos_id=BOS,
                                                 eos_id=EOS, max_length=7, max_lengths=limits))):
    np.testing.assert_array_equal(out.lengths, limits)
    for b, n in enumerate(np.asarray(limits)):
      assert out.tokens[b, n - 1] == EOS and EOS not in np.asarray(out.tokens[b, :n - 1])


def _never_eos_step(out, params, state, token_B):
  state, _, attention = _step(params, state, token_B)
  logits = (state["h"] @ out).at[:, EOS].set(-30.0)
  return state, jax.nn.log_softmax(logits), attention


def _reference_beam(params, state, beam_size, max_length, alpha):
  """Plain-Python beam search with the same rules but no early stopping: it always runs to the end."""
  alive, finished = [(0.0, [])], []
  for t in range(max_length):
    candidates = []
    for lp, tokens in alive:
      s, token = state, jnp.array([BOS])
      for w in tokens:
        s, _, _ = _step(params, s, token)
        token = jnp.array([w])
      _, log_probs, _ = _step(params, s, token)
      for v in range(V):
        if t == max_length - 1 and v != EOS:
          continue
        candidates.append((lp + float(log_probs[0, v]), tokens + [v]))
    candidates = sorted(candidates, key=lambda c: -c[0])[:2 * beam_size]
    for rank, (lp, tokens) in enumerate(candidates):
      if tokens[-1] == EOS and rank < beam_size:
        finished.append((lp / float(decoding.length_penalty(len(tokens), alpha)), tokens))
    finished = sorted(finished, key=lambda f: -f[0])[:beam_size]
    alive = [c for c in candidates if c[1][-1] != EOS][:beam_size]
  return finished


@pytest.mark.parametrize("alpha", [0.0, 2.0])
def test_early_stopping_does_not_change_the_result(alpha):
  """The jitted search stops sentences early; a reference that never stops finds the same beams."""
  params, max_length, batch = _params(seed=0, scale=1.0, eos_bias=2.0), 6, 5
  state = _state(batch, seed=20)
  out = decoding.beam_search(_step, params, state, beam_size=2, bos_id=BOS, eos_id=EOS,
                             max_length=max_length, alpha=alpha)
  for b in range(batch):
    ref = _reference_beam(params, jax.tree.map(lambda x: x[b:b + 1], state), 2, max_length, alpha)
    np.testing.assert_allclose(out.scores[b], [f[0] for f in ref], rtol=1e-5)
    for k, (_, tokens) in enumerate(ref):
      assert list(np.asarray(out.tokens[b, k, :len(tokens)])) == tokens
