"""Padded batches of encoded translation pairs, length-bucketed (`rnn_jax.data.buckets`).

  source_ids, target_ids = parallel_batches.encode_pairs(pairs, source_tokenizer, target_tokenizer)
  train_batch = parallel_batches.TrainBatches(source_ids, target_ids, batch_size, seed)   # step -> batch
  for rows, batch in parallel_batches.eval_batches(source_ids, target_ids, batch_size): ...
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rnn_jax.data import buckets
from rnn_jax.data.tokenizers import BOS, EOS, PAD, Tokenizer

def encode_pairs(pairs: Sequence[tuple[str, str]], source_tok: Tokenizer, target_tok: Tokenizer, max_tokens: int = 0):
  """`(source_ids, target_ids)`: lists of int32 arrays; both sides truncated to `max_tokens` (0: no limit)."""
  cut = (lambda x: x[:max_tokens]) if max_tokens else (lambda x: x)
  return ([cut(source_tok.encode(s)) for s, _ in pairs], [cut(target_tok.encode(t)) for _, t in pairs])


def _width(longest: int, pad_to_multiple: int, fixed: int = 0) -> int:
  if fixed:
    return max(fixed, longest)
  if pad_to_multiple <= 0:
    return max(1, longest)
  return max(pad_to_multiple, -(-longest // pad_to_multiple) * pad_to_multiple)


def pad_batch(sources: Sequence[np.ndarray], targets: Sequence[np.ndarray] | None = None,
              pad_to_multiple: int = 8, widths: tuple[int, int] = (0, 0)) -> dict[str, np.ndarray]:
  """Right-padded arrays, each width rounded up to `pad_to_multiple` (few distinct shapes to compile)
  or, where `widths` gives one (source, target), padded to exactly that (one shape).

  Returns `source [B, S]`, `source_lengths [B]` and, with targets, `target_in [B, T]`
  (BOS + target), `target_out [B, T]` (target + EOS) and `target_lengths [B]` (target + 1).
  """
  source_lengths = np.asarray([len(s) for s in sources], np.int32)
  source = np.full((len(sources), _width(int(source_lengths.max(initial=1)), pad_to_multiple, widths[0])), PAD,
                   np.int32)
  for i, s in enumerate(sources):
    source[i, :len(s)] = s
  batch = {"source": source, "source_lengths": source_lengths}
  if targets is not None:
    target_lengths = np.asarray([len(t) + 1 for t in targets], np.int32)
    width = _width(int(target_lengths.max(initial=1)), pad_to_multiple, widths[1])
    target_in = np.full((len(targets), width), PAD, np.int32)
    target_out = np.full((len(targets), width), PAD, np.int32)
    for i, t in enumerate(targets):
      target_in[i, 0], target_in[i, 1:len(t) + 1] = BOS, t
      target_out[i, :len(t)], target_out[i, len(t)] = t, EOS
    batch.update(target_in=target_in, target_out=target_out, target_lengths=target_lengths)
  return batch


def fixed_widths(sources, targets=None) -> tuple[int, int]:
  """`(S, T)` that fit every pair: padding all batches to them gives a single compiled shape."""
  return (max(1, max((len(s) for s in sources), default=1)),
          max(1, max((len(t) + 1 for t in targets), default=1)) if targets is not None else 0)


class TrainBatches:
  """Batch `step` as a pure function of the step: length-bucketed, shuffled per epoch with a seed
  (`buckets.epoch_batches`: pairs sorted by source + target length within chunks of `bucket_batches`
  batches; pairs beyond the last full batch of an epoch skipped, a different set each epoch).
  `pad_to_multiple=0` pads every batch to the longest pair.
  """

  def __init__(self, sources, targets, batch_size: int, seed: int = 0, bucket_batches: int = 50,
               pad_to_multiple: int = 8):
    self.sources, self.targets, self.pad_to_multiple = sources, targets, pad_to_multiple
    self.widths = fixed_widths(sources, targets) if pad_to_multiple == 0 else (0, 0)
    self._bucketed = buckets.Bucketed([len(s) + len(t) for s, t in zip(sources, targets)], batch_size, seed,
                                      bucket_batches)
    self.steps_per_epoch = self._bucketed.steps_per_epoch

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    rows = self._bucketed(step)
    return pad_batch([self.sources[i] for i in rows], [self.targets[i] for i in rows], self.pad_to_multiple,
                     self.widths)


def eval_batches(sources, targets=None, batch_size: int = 64, pad_to_multiple: int = 8):
  """`(indices, batch)` over all pairs sorted by source length; the last batch is topped up with copies
  of its first pair so that every batch has `batch_size` rows (callers keep only `indices`).
  `pad_to_multiple=0` pads every batch to the longest pair."""
  widths = fixed_widths(sources, targets) if pad_to_multiple == 0 else (0, 0)
  for rows, full in buckets.sorted_batches([len(s) for s in sources], batch_size):
    yield rows, pad_batch([sources[i] for i in full], None if targets is None else [targets[i] for i in full],
                          pad_to_multiple, widths)
