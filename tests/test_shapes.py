"""Sequence tasks by shape (experiments/shapes): each small model learns its task."""

import jax
import numpy as np

from experiments.shapes import examples as shapes


def test_tagging_data_labels_are_neighbourhood_maxima():
  x, labels, lengths = (np.asarray(a) for a in shapes.tagging_batch(jax.random.key(0), batch=8))
  for row in range(8):
    n = lengths[row]
    expected = [max(x[row, max(t - 1, 0):t + 2][:n - max(t - 1, 0)]) for t in range(n)]
    np.testing.assert_array_equal(labels[row, :n], expected)


def test_decoding_data_is_an_arithmetic_series_then_eos():
  vector, inputs, targets, lengths = (np.asarray(a) for a in shapes.decoding_batch(jax.random.key(1), batch=8))
  for row in range(8):
    start, step, digits = np.argmax(vector[row, :10]), np.argmax(vector[row, 10:20]), np.argmax(vector[row, 20:]) + 3
    np.testing.assert_array_equal(targets[row, :digits], (start + step * np.arange(digits)) % 10)
    assert targets[row, digits] == shapes.EOS and lengths[row] == digits + 1
    np.testing.assert_array_equal(inputs[row, 1:], targets[row, :-1])


def test_bidirectional_tagger_learns_and_needs_both_directions():
  assert shapes.train_tagger(steps=300)["token_accuracy"] > 0.95
  assert shapes.train_tagger(steps=300, bidirectional=False)["token_accuracy"] < 0.85  # cannot see x[t+1]


def test_sequence_classifier_learns():
  result = shapes.train_classifier(steps=300)
  assert result["accuracy"] > 0.85 > result["majority_class"] + 0.3


def test_decoder_from_one_vector_learns():
  assert shapes.train_decoder(steps=300)["exact_match"] > 0.8
