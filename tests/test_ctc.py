"""CTC decoding and error rates against hand-made cases, brute-force enumeration and a per-sequence
prefix beam search written independently (plain Python over a dict of prefixes)."""

import collections
import itertools

import jax
import numpy as np
import pytest

from rnn_jax import ctc


def _log(p):
  return np.log(np.asarray(p, np.float64))


def _brute_force(probs_TxV, blank=0):
  """labels -> total probability, summing every frame path that collapses to them."""
  totals = {}
  steps, vocab = probs_TxV.shape
  for path in itertools.product(range(vocab), repeat=steps):
    labels = tuple(c for i, c in enumerate(path) if c != blank and (i == 0 or path[i - 1] != c))
    totals[labels] = totals.get(labels, 0.0) + np.prod([probs_TxV[t, c] for t, c in enumerate(path)])
  return totals


def _logaddexp(*xs):
  top = max(xs)
  if top == -np.inf:
    return -np.inf
  return top + np.log(sum(np.exp(x - top) for x in xs))


def _reference_prefix_beam_search(log_probs_TxV, beam_size=8, blank=0, length=None, prune=-12.0):
  """Prefix beam search over one sequence, a dict from prefix to (log p ending in blank, in a label)."""
  log_probs = np.asarray(log_probs_TxV, np.float64)[:length]
  beams = {(): (0.0, -np.inf)}
  for frame in log_probs:
    candidates = np.flatnonzero(frame >= min(prune, frame.max()))
    nxt = collections.defaultdict(lambda: (-np.inf, -np.inf))
    for prefix, (p_b, p_nb) in beams.items():
      for c in candidates:
        p = frame[c]
        if c == blank:
          b, nb = nxt[prefix]
          nxt[prefix] = (_logaddexp(b, p_b + p, p_nb + p), nb)
          continue
        extended = prefix + (int(c),)
        b, nb = nxt[extended]
        if prefix and prefix[-1] == c:
          nxt[extended] = (b, _logaddexp(nb, p_b + p))          # a repeat needs a blank in between
          b, nb = nxt[prefix]
          nxt[prefix] = (b, _logaddexp(nb, p_nb + p))           # else it merges into the same label
        else:
          nxt[extended] = (b, _logaddexp(nb, p_b + p, p_nb + p))
    ranked = sorted(((k, v) for k, v in nxt.items() if _logaddexp(*v) > -np.inf),
                    key=lambda kv: -_logaddexp(*kv[1]))
    beams = dict(ranked[:beam_size])
  return [(prefix, float(_logaddexp(*ps))) for prefix, ps in
          sorted(beams.items(), key=lambda kv: -_logaddexp(*kv[1]))]


def test_best_path_hand_made():
  # frames: a a - b b - b  c   (blank = 0, a=1, b=2, c=3) -> "a b b c"
  frames = [1, 1, 0, 2, 2, 0, 2, 3]
  logits = np.full((1, len(frames), 4), -5.0)
  logits[0, np.arange(len(frames)), frames] = 5.0
  out = ctc.best_path(logits)
  assert out.labels == [[1, 2, 2, 3]]
  assert out.frames == [[0, 3, 6, 7]]


def test_best_path_respects_lengths_and_blank_id():
  frames = [[2, 2, 1, 0], [0, 1, 1, 2]]   # blank = 2 here
  logits = np.full((2, 4, 3), -3.0)
  for b, f in enumerate(frames):
    logits[b, np.arange(4), f] = 3.0
  out = ctc.best_path(logits, lengths_B=np.array([3, 4]), blank=2)
  assert out.labels == [[1], [0, 1]]


def test_prefix_beam_finds_what_best_path_misses():
  # Two frames, p(blank) = 0.6, p(a) = 0.4: best path "--" -> "" (0.36), but
  # P("a") = 0.4*0.4 + 0.4*0.6 + 0.6*0.4 = 0.64.
  log_probs = _log([[0.6, 0.4], [0.6, 0.4]])
  assert ctc.best_path(log_probs[None]).labels == [[]]
  [beams] = ctc.prefix_beam_search(log_probs[None], beam_size=4)
  assert beams[0][0] == (1,)
  np.testing.assert_allclose(np.exp(beams[0][1]), 0.64, rtol=1e-12)
  np.testing.assert_allclose(np.exp(beams[1][1]), 0.36, rtol=1e-12)


def test_prefix_beam_rejects_an_empty_beam():
  with pytest.raises(ValueError, match="beam_size must be >= 1, got -1"):
    ctc.prefix_beam_search(np.log(np.full((1, 3, 4), 0.25)), beam_size=-1)


def test_prefix_beam_repeated_label_needs_blank():
  # "a a" can only come from a-blank-a; three frames strongly a, blank, a.
  log_probs = _log([[0.05, 0.9, 0.05], [0.9, 0.05, 0.05], [0.05, 0.9, 0.05]])
  assert ctc.beam_search(log_probs[None], beam_size=5) == [[1, 1]]


def _random_log_probs(rng, kind, shape):
  """Log-probabilities `[B, T, V]`: smooth, peaked float32 like a model's, or with many exact ties."""
  if kind == "smooth":
    return np.log(rng.dirichlet(np.full(shape[-1], 0.5), size=shape[:-1]))
  if kind == "peaked":
    logits = (rng.normal(size=shape) * 6).astype(np.float32)
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  counts = rng.integers(1, 3, size=shape).astype(np.float64)   # ties within and across frames
  return np.log(counts / counts.sum(-1, keepdims=True))


@pytest.mark.parametrize("beam_size", [1, 2, 8])
@pytest.mark.parametrize("kind", ["smooth", "peaked", "ties"])
def test_prefix_beam_equals_the_per_sequence_search(beam_size, kind):
  """Same prefixes, order and log-probabilities (to the bit) as the dict-based search, sequence by sequence."""
  for seed in range(30):
    rng = np.random.default_rng(seed)
    batch, steps, vocab = rng.integers(1, 6), rng.integers(0, 25), rng.integers(2, 8)
    log_probs = _random_log_probs(rng, kind, (batch, steps, vocab))
    lengths, blank = rng.integers(0, steps + 1, size=batch), int(rng.integers(vocab))
    prune = (-12.0, -2.0, -np.inf)[seed % 3]
    found = ctc.prefix_beam_search(log_probs, lengths, beam_size, blank, prune)
    assert found == [_reference_prefix_beam_search(lp, beam_size, blank, int(n), prune)
                     for lp, n in zip(log_probs, lengths)], (seed, blank, prune)


def test_prefix_beam_all_tied_keeps_the_per_sequence_order():
  log_probs = np.full((2, 6, 4), np.log(0.25))
  found = ctc.prefix_beam_search(log_probs, np.array([6, 3]), beam_size=8)
  assert found == [_reference_prefix_beam_search(lp, 8, length=n) for lp, n in zip(log_probs, (6, 3))]


@pytest.mark.parametrize("seed", range(8))
def test_beam_of_one_on_confident_frames_is_best_path(seed):
  # Each frame's top label has p >= 0.98, so over 30 frames the best path alone holds more than half of
  # the mass of every prefix of frames: a beam of one keeps its labels.
  rng = np.random.default_rng(seed)
  batch, steps, vocab = 4, 30, 5
  probs = rng.dirichlet(np.ones(vocab), size=(batch, steps)) * 0.02
  probs[np.arange(batch)[:, None], np.arange(steps), rng.integers(vocab, size=(batch, steps))] += 0.98
  lengths = rng.integers(1, steps + 1, size=batch)
  blank = seed % vocab
  assert (ctc.beam_search(np.log(probs), lengths, beam_size=1, blank=blank)
          == ctc.best_path(np.log(probs), lengths, blank=blank).labels)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prefix_beam_probabilities_match_enumeration_and_optax(seed):
  rng = np.random.default_rng(seed)
  probs = rng.dirichlet(np.ones(3), size=5)   # T = 5, V = 3
  exact = _brute_force(probs)
  [beams] = ctc.prefix_beam_search(np.log(probs)[None], beam_size=1000, prune=-np.inf)
  assert len(beams) == len(exact)
  for labels, log_p in beams:
    np.testing.assert_allclose(np.exp(log_p), exact[labels], rtol=1e-9)
  best_labels = max(exact, key=exact.get)
  assert beams[0][0] == best_labels
  # optax's CTC loss is -log of the same probability.
  labels = np.zeros((1, 5), np.int32)
  labels[0, :len(best_labels)] = best_labels
  loss = ctc.ctc_loss(np.log(probs)[None].astype(np.float32), np.array([5]), labels, np.array([len(best_labels)]))
  np.testing.assert_allclose(float(loss[0]), -np.log(exact[best_labels]), rtol=1e-4)


@pytest.mark.parametrize("seed", range(4))
def test_prefix_beam_matches_enumeration_in_a_batch(seed):
  # Sequences of different lengths, blank anywhere, a beam wider than the 2^7 - 1 possible prefixes:
  # every prefix's probability is exact (all paths collapsing to it summed), the most probable first.
  rng = np.random.default_rng(10 + seed)
  vocab, blank = 3, seed % 3
  probs = rng.dirichlet(np.ones(vocab), size=(3, 6))
  lengths = np.array([6, 4, 1])
  found = ctc.prefix_beam_search(np.log(probs), lengths, beam_size=128, blank=blank, prune=-np.inf)
  for beams, p, n in zip(found, probs, lengths):
    exact = _brute_force(p[:n], blank)
    assert len(beams) == len(exact)
    for labels, log_p in beams:
      np.testing.assert_allclose(np.exp(log_p), exact[labels], rtol=1e-9)
    assert exact[beams[0][0]] == max(exact.values())


def test_ctc_loss_lengths_ignore_padding():
  rng = np.random.default_rng(3)
  logits = rng.normal(size=(1, 6, 4)).astype(np.float32)
  labels = np.array([[1, 2, 0, 0]], np.int32)
  short = ctc.ctc_loss(logits[:, :4], np.array([4]), labels[:, :2], np.array([2]))
  padded_logits = logits.copy()
  padded_logits[:, 4:] = 100.0   # garbage past the length
  padded = ctc.ctc_loss(padded_logits, np.array([4]), labels, np.array([2]))
  np.testing.assert_allclose(np.asarray(padded), np.asarray(short), rtol=1e-5)
  assert jax.grad(lambda x: ctc.ctc_loss(x, np.array([4]), labels, np.array([2]))[0])(padded_logits)[0, 4:].max() == 0


@pytest.mark.parametrize("ref,hyp,distance", [
    ("kitten", "sitting", 3), ("", "abc", 3), ("abc", "", 3), ("abc", "abc", 0),
    ("flaw", "lawn", 2), ([1, 2, 3], [1, 3], 1), ("intention", "execution", 5)])
def test_edit_distance(ref, hyp, distance):
  assert ctc.edit_distance(ref, hyp) == distance
  assert ctc.edit_distance(hyp, ref) == distance


def test_error_rate_and_accuracy():
  assert ctc.error_rate(["abcd", "ef"], ["abxd", "ef"]) == pytest.approx(1 / 6)
  assert ctc.sequence_accuracy(["abcd", "ef"], ["abxd", "ef"]) == 0.5
  with pytest.raises(ValueError, match="references"):
    ctc.error_rate(["a"], ["a", "b"])
