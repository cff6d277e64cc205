"""Length-bucketed batching of variable-length examples: which examples form each batch (indices only;
the dataset's own module pads them).

  bucketed = buckets.Bucketed(lengths_N, batch_size, seed=0, bucket_batches=50)
  rows_B = bucketed(step)                              # a pure function of the step
  for rows_B, full_rows_B in buckets.sorted_batches(lengths_N, batch_size): ...   # evaluation
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                  bucket_batches: int) -> np.ndarray:
  """`[steps_per_epoch, batch_size]` example indices for one epoch, a function of `(seed, epoch)`.

  The examples are shuffled and those beyond the last full batch dropped (a different set each epoch); within
  chunks of `bucket_batches` batches they are sorted by length, so a batch holds examples of similar length
  (little padding), and the batches are shuffled again.
  """
  steps = len(lengths) // batch_size
  rng = np.random.default_rng([seed, epoch])
  order = rng.permutation(len(lengths))[:steps * batch_size]
  chunk = batch_size * bucket_batches
  lengths = np.asarray(lengths)
  for start in range(0, len(order), chunk):
    part = order[start:start + chunk]
    order[start:start + chunk] = part[np.argsort(lengths[part], kind="stable")]
  return order.reshape(steps, batch_size)[rng.permutation(steps)]


class Bucketed:
  """`step -> [batch_size]` example indices: epoch `step // steps_per_epoch` of `epoch_batches`, cached."""

  def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, bucket_batches: int = 50):
    if len(lengths) < batch_size:
      raise ValueError(f"{len(lengths)} training examples cannot fill one batch of {batch_size}")
    self.lengths, self.batch_size, self.seed, self.bucket_batches = lengths, batch_size, seed, bucket_batches
    self.steps_per_epoch = len(lengths) // batch_size
    self._epoch, self._batches = -1, None

  def __call__(self, step: int) -> np.ndarray:
    epoch, index = divmod(step, self.steps_per_epoch)
    if epoch != self._epoch:
      self._epoch = epoch
      self._batches = epoch_batches(self.lengths, self.batch_size, self.seed, epoch, self.bucket_batches)
    return self._batches[index]


def sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """`(rows, full_rows)` over every example in order of length (stable): `rows` the batch's examples, `full_rows`
  the same topped up with copies of its first so that every batch has `batch_size` rows."""
  order = np.argsort(np.asarray(lengths), kind="stable")
  for start in range(0, len(order), batch_size):
    rows = order[start:start + batch_size]
    yield rows, np.concatenate([rows, np.full(batch_size - len(rows), rows[0])])
