"""CTC decoding and error rates against hand-made cases and brute-force enumeration."""

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
  beams = ctc.prefix_beam_search(log_probs, beam_size=4)
  assert beams[0][0] == (1,)
  np.testing.assert_allclose(np.exp(beams[0][1]), 0.64, rtol=1e-12)
  np.testing.assert_allclose(np.exp(beams[1][1]), 0.36, rtol=1e-12)


def test_prefix_beam_rejects_an_empty_beam():
  with pytest.raises(ValueError, match="beam_size must be >= 1, got -1"):
    ctc.prefix_beam_search(np.log(np.full((3, 4), 0.25)), beam_size=-1)


def test_prefix_beam_repeated_label_needs_blank():
  # "a a" can only come from a-blank-a; three frames strongly a, blank, a.
  log_probs = _log([[0.05, 0.9, 0.05], [0.9, 0.05, 0.05], [0.05, 0.9, 0.05]])
  assert ctc.beam_search(log_probs[None], beam_size=5) == [[1, 1]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prefix_beam_probabilities_match_enumeration_and_optax(seed):
  rng = np.random.default_rng(seed)
  probs = rng.dirichlet(np.ones(3), size=5)   # T = 5, V = 3
  exact = _brute_force(probs)
  beams = ctc.prefix_beam_search(np.log(probs), beam_size=1000, prune=-np.inf)
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
