"""Length-bucketed batching: epochs cover distinct examples, buckets hold similar lengths, batches are a function
of the step, evaluation visits every example once."""

import numpy as np
import pytest

from rnn_jax.data import buckets

LENGTHS = np.random.default_rng(0).integers(1, 100, size=103)


def test_an_epoch_draws_distinct_examples_and_differs_from_the_next():
  first, second = (buckets.epoch_batches(LENGTHS, 8, seed=3, epoch=e, bucket_batches=4) for e in (0, 1))
  assert first.shape == (12, 8)  # 103 // 8 full batches
  assert len(set(first.ravel().tolist())) == 96
  assert not np.array_equal(np.sort(first.ravel()), np.sort(second.ravel()))  # a different 7 left out


def test_one_chunk_sorts_the_whole_epoch_so_batches_do_not_overlap_in_length():
  batches = buckets.epoch_batches(LENGTHS, 8, seed=0, epoch=0, bucket_batches=1000)
  spans = sorted((LENGTHS[rows].min(), LENGTHS[rows].max()) for rows in batches)
  assert all(hi <= next_lo for (_, hi), (next_lo, _) in zip(spans, spans[1:]))
  unbucketed = buckets.epoch_batches(LENGTHS, 8, seed=0, epoch=0, bucket_batches=1)
  assert np.mean([np.ptp(LENGTHS[rows]) for rows in batches]) < np.mean([np.ptp(LENGTHS[rows]) for rows in unbucketed])


def test_batches_are_a_function_of_the_step():
  a, b = buckets.Bucketed(LENGTHS, 8, seed=5), buckets.Bucketed(LENGTHS, 8, seed=5)
  for step in (30, 0, 13, 30, 1):  # any order, any instance, across epochs
    np.testing.assert_array_equal(a(step), b(step))
  np.testing.assert_array_equal(a(12 + 4), buckets.epoch_batches(LENGTHS, 8, 5, 1, 50)[4])


def test_too_few_examples_for_one_batch_is_one_clear_error():
  with pytest.raises(ValueError, match="3 training examples cannot fill one batch of 8"):
    buckets.Bucketed([1, 2, 3], 8)


def test_sorted_batches_visit_every_example_once_by_length_topped_up_with_copies():
  batches = list(buckets.sorted_batches(LENGTHS, 10))
  rows = np.concatenate([r for r, _ in batches])
  np.testing.assert_array_equal(np.sort(rows), np.arange(len(LENGTHS)))
  assert np.all(np.diff(LENGTHS[rows]) >= 0)
  last_rows, last_full = batches[-1]
  assert len(last_rows) == 3 and len(last_full) == 10 and set(last_full[3:]) == {last_rows[0]}
