"""Connectionist temporal classification (Graves et al. 2006): loss wrapper, decoding, error rates.

The loss is optax's (`optax.ctc_loss`); this module adds the lengths-based wrapper
the rest of rnn_jax uses, and the host-side decoders and metrics:

  loss_B = ctc_loss(logits_BxTxV, lengths_B, labels_BxL, label_lengths_B)
  hyps = best_path(logits_BxTxV, lengths_B)                  # greedy: argmax, merge repeats, drop blanks
  beams = prefix_beam_search(log_probs_BxTxV, lengths_B, beam_size=8)  # per sequence: (labels, log_prob)s
  hyps = beam_search(log_probs_BxTxV, lengths_B, beam_size=8)         # per sequence: the best labels
  cer = error_rate(refs, hyps)                              # sum of edit distances / sum of reference lengths

Label 0 is the blank unless `blank` says otherwise; labels are ints in `[0, V)`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnn_jax import ops


def paddings(lengths_B: jax.Array, size: int) -> jax.Array:
  """`[B, size]` float paddings (1.0 past each length), as optax expects."""
  return jnp.logical_not(ops.mask_from_lengths(lengths_B, size)).astype(jnp.float32)


def ctc_loss(logits_BxTxV: jax.Array, lengths_B: jax.Array, labels_BxL: jax.Array, label_lengths_B: jax.Array,
             blank: int = 0) -> jax.Array:
  """Per-sequence CTC negative log-likelihood `[B]` (`optax.ctc_loss` with lengths instead of paddings)."""
  return optax.ctc_loss(logits_BxTxV, paddings(lengths_B, logits_BxTxV.shape[1]), labels_BxL,
                        paddings(label_lengths_B, labels_BxL.shape[1]), blank_id=blank)


class BestPath(NamedTuple):
  labels: list  # per sequence, the decoded label ids
  frames: list  # per sequence, the frame at which each decoded label starts


def best_path(scores_BxTxV, lengths_B=None, blank: int = 0) -> BestPath:
  """Greedy (best-path) decoding: the most likely label per frame, repeats merged, blanks removed.

  `scores` may be logits or log-probabilities (the argmax is the same).
  """
  path_BxT = np.asarray(scores_BxTxV).argmax(-1)
  steps = path_BxT.shape[1]
  lengths = np.full(path_BxT.shape[0], steps) if lengths_B is None else np.asarray(lengths_B)
  labels, frames = [], []
  for path, length in zip(path_BxT, lengths):
    path = path[:length]
    starts = np.flatnonzero((path != blank) & (path != np.concatenate([[-1], path[:-1]])))
    labels.append(path[starts].tolist())
    frames.append(starts.tolist())
  return BestPath(labels, frames)


def _logsumexp(*xs):
  """Elementwise `log(sum(exp(x)))`, summed in the order given, so that the same terms give the same bits."""
  top = functools.reduce(np.maximum, xs)
  shift = np.maximum(top, np.finfo(np.float64).min)   # top itself unless it is -inf (then the sum is 0)
  with np.errstate(divide="ignore"):
    return top + np.log(sum(np.exp(x - shift) for x in xs))


class _Beams(NamedTuple):
  """The beam of every sequence, most probable first; an empty slot has both log-probabilities -inf."""
  p_blank: np.ndarray    # [B, K] log p of the frames so far, ending in a blank
  p_label: np.ndarray    # [B, K] log p of the frames so far, ending in the prefix's last label
  labels: np.ndarray     # [B, K, W] the prefixes, -1 past their lengths
  lengths: np.ndarray    # [B, K]


def _parents(beams: _Beams, valid_BxK: np.ndarray) -> np.ndarray:
  """`[B, K]` the slot holding each prefix less its last label, -1 where that prefix is not in the beam."""
  rows, slots = np.nonzero(beams.lengths > 0)
  shortened = beams.labels.copy()
  shortened[rows, slots, beams.lengths[rows, slots] - 1] = -1
  is_parent = ((beams.labels[:, :, None] == shortened[:, None]).all(-1)   # [B, parent K, child K]
               & (beams.lengths[:, :, None] + 1 == beams.lengths[:, None])
               & valid_BxK[:, :, None] & valid_BxK[:, None])
  return np.where(is_parent.any(1), is_parent.argmax(1), -1)


def _kept_prefixes(beams: _Beams, last, p_BxV, kept_BxV, blank: int):
  """The prefixes already in the beam after one more frame (a blank, their last label repeated, or their
  parent's extension): `(p_blank, p_label, rank, parent slot or -1)` `[B, K]`; `rank` as in `_candidates`."""
  batch, size = last.shape
  vocab, rows, slot = p_BxV.shape[1], np.arange(batch)[:, None], np.arange(size)
  valid = (beams.p_blank > -np.inf) | (beams.p_label > -np.inf)
  parent = _parents(beams, valid)
  has_last, has_parent = last >= 0, parent >= 0
  at_parent = np.maximum(parent, 0)
  p_last = np.where(has_last, p_BxV[rows, np.maximum(last, 0)], -np.inf)
  kept_last = has_last & kept_BxV[rows, np.maximum(last, 0)]
  p_blank = _logsumexp(beams.p_blank + p_BxV[:, blank:blank + 1], beams.p_label + p_BxV[:, blank:blank + 1])
  # The per-sequence search adds the parent's and the prefix's own terms in the order it meets them.
  own = beams.p_label + p_last
  from_b, from_nb = beams.p_blank[rows, at_parent] + p_last, beams.p_label[rows, at_parent] + p_last
  parent_repeats = last[rows, at_parent] == last
  parent_first = _logsumexp(np.where(parent_repeats, from_b, _logsumexp(from_b, from_nb)), own)
  own_first = np.where(parent_repeats, _logsumexp(own, from_b), _logsumexp(own, from_b, from_nb))
  p_label = np.where(has_parent, np.where(at_parent < slot, parent_first, own_first), own)
  never = 2 * size * vocab
  rank = np.minimum.reduce([np.where(kept_BxV[:, blank:blank + 1], 2 * (slot * vocab + blank), never),
                            np.where(kept_last, 2 * (slot * vocab + last) + 1, never),
                            np.where(has_parent & kept_last, 2 * (at_parent * vocab + last), never)])
  return p_blank, p_label, rank, parent


def _candidates(beams: _Beams, p_BxV, kept_BxV, blank: int):
  """Every prefix one more frame can lead to: `(total log p, p_blank, p_label, rank)` `[B, K V + K]`, first
  each slot k extended by each label c (at k V + c), then the K prefixes already there.

  `rank` is where a per-sequence search (beams in order, labels ascending) first meets the prefix, 2 (k V + c)
  for the extension of k by c; sorting by probability, then rank, breaks ties as that search does.
  """
  batch, size = beams.p_blank.shape
  vocab = p_BxV.shape[1]
  rows = np.arange(batch)[:, None]
  last = beams.labels[rows, np.arange(size), np.maximum(beams.lengths - 1, 0)]
  last = np.where(beams.lengths > 0, last, -1)
  p_b, p_nb = beams.p_blank[..., None] + p_BxV[:, None], beams.p_label[..., None] + p_BxV[:, None]
  extended = np.where(np.arange(vocab) == last[..., None], p_b, _logsumexp(p_b, p_nb))  # a repeat needs a blank
  extended[..., blank] = -np.inf
  stay_blank, stay_label, stay_rank, parent = _kept_prefixes(beams, last, p_BxV, kept_BxV, blank)
  parents, children = np.nonzero(parent >= 0)
  extended[parents, parent[parents, children], last[parents, children]] = -np.inf   # it is the child
  total = np.concatenate([extended.reshape(batch, -1), _logsumexp(stay_blank, stay_label)], 1)
  p_blank = np.concatenate([np.full((batch, size * vocab), -np.inf), stay_blank], 1)
  p_label = np.concatenate([extended.reshape(batch, -1), stay_label], 1)
  rank = np.concatenate([np.broadcast_to(2 * np.arange(size * vocab), (batch, size * vocab)), stay_rank], 1)
  return total, p_blank, p_label, rank


def _best(total_BxN, rank_BxN, size: int) -> np.ndarray:
  """`[B, size]` indices of the most probable entries, ties broken by the lower rank, in that order."""
  rows = np.arange(len(total_BxN))[:, None]
  best = np.argpartition(-total_BxN, size - 1, axis=1)[:, :size]
  threshold = total_BxN[rows, best].min(1, keepdims=True)
  tied = ((total_BxN == threshold).sum(1) > (total_BxN[rows, best] == threshold).sum(1)) & (threshold[:, 0] > -np.inf)
  for row in np.flatnonzero(tied):   # which of the tied entries argpartition took is arbitrary
    best[row] = np.lexsort((rank_BxN[row], -total_BxN[row]))[:size]
  order = np.lexsort((rank_BxN[rows, best], -total_BxN[rows, best]), axis=1)
  return best[rows, order]


def _advance(beams: _Beams, p_BxV, kept_BxV, blank: int) -> _Beams:
  """The beams after one more frame: the `K` most probable candidates."""
  total, p_blank, p_label, rank = _candidates(beams, p_BxV, kept_BxV, blank)
  batch, size = beams.p_blank.shape
  extensions = size * p_BxV.shape[1]
  rows = np.arange(batch)[:, None]
  best = _best(total, rank, size)
  extends = best < extensions
  source = np.where(extends, best // p_BxV.shape[1], best - extensions)
  labels, lengths = beams.labels[rows, source], beams.lengths[rows, source]
  grows, slots = np.nonzero(extends)
  labels[grows, slots, lengths[grows, slots]] = best[grows, slots] % p_BxV.shape[1]
  return _Beams(p_blank[rows, best], p_label[rows, best], labels, lengths + extends)


def prefix_beam_search(log_probs_BxTxV, lengths_B=None, beam_size: int = 8, blank: int = 0,
                       prune: float = -12.0) -> list[list[tuple[tuple, float]]]:
  """CTC prefix beam search (Hannun et al. 2014, no language model), vectorised over the batch and the beam.

  Each prefix keeps two log-probabilities: of the frames so far ending in a blank and
  ending in its last label, so that paths collapsing to the same labels are summed.
  Labels whose log-probability at a frame is below `prune` are skipped there (the
  most likely label at each frame is always kept). Ties are broken as a per-sequence
  search would: earlier beam first, then lower label.

  Args:
    log_probs_BxTxV: per-frame log-probabilities (log-softmax of the logits).
    lengths_B: number of valid frames of each sequence (default all).
  Returns:
    Per sequence, up to `beam_size` `(labels, log_prob)` pairs, most probable first.
  """
  if beam_size < 1:
    raise ValueError(f"beam_size must be >= 1, got {beam_size}")
  batch, steps, _ = np.shape(log_probs_BxTxV)
  lengths = np.full(batch, steps) if lengths_B is None else np.minimum(np.asarray(lengths_B), steps)
  order = np.argsort(-lengths, kind="stable")   # the sequences still running are always the first ones
  log_probs, lengths = np.asarray(log_probs_BxTxV, np.float64)[order], lengths[order]
  p_blank = np.full((batch, beam_size), -np.inf)
  p_blank[:, 0] = 0.0
  beams = _Beams(p_blank, np.full((batch, beam_size), -np.inf), np.full((batch, beam_size, steps + 1), -1),
                 np.zeros((batch, beam_size), int))
  for t in range(int(lengths.max(initial=0))):
    running = int(np.sum(lengths > t))
    width = int(beams.lengths[:running].max()) + 1   # prefixes grow by at most one label a frame
    frame = log_probs[:running, t]
    kept = frame >= np.minimum(prune, frame.max(1, keepdims=True))
    now = _Beams(beams.p_blank[:running], beams.p_label[:running], beams.labels[:running, :, :width],
                 beams.lengths[:running])
    for array, new in zip(beams, _advance(now, np.where(kept, frame, -np.inf), kept, blank)):
      array[:running, ..., :new.shape[-1]] = new   # of the labels, only the first `width` columns change
  totals = _logsumexp(beams.p_blank, beams.p_label)
  found = [[(tuple(beams.labels[b, k, :beams.lengths[b, k]].tolist()), float(totals[b, k]))
            for k in range(beam_size) if totals[b, k] > -np.inf] for b in range(batch)]
  return [found[i] for i in np.argsort(order)]


def beam_search(log_probs_BxTxV, lengths_B=None, beam_size: int = 8, blank: int = 0) -> list[list[int]]:
  """The best prefix-beam-search labels of each sequence in a batch."""
  return [list(beams[0][0]) for beams in prefix_beam_search(log_probs_BxTxV, lengths_B, beam_size, blank)]


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
  """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
  row = list(range(len(hyp) + 1))
  for i, r in enumerate(ref, 1):
    diag, row[0] = row[0], i
    for j, h in enumerate(hyp, 1):
      diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (r != h))
  return row[-1]


def error_rate(refs: Sequence[Sequence], hyps: Sequence[Sequence]) -> float:
  """Corpus error rate: total edit distance over total reference length (CER for characters)."""
  if len(refs) != len(hyps):
    raise ValueError(f"got {len(refs)} references and {len(hyps)} hypotheses")
  total = sum(len(r) for r in refs)
  if total == 0:
    raise ValueError("references are all empty; the error rate is undefined")
  return sum(edit_distance(r, h) for r, h in zip(refs, hyps)) / total


def sequence_accuracy(refs: Sequence[Sequence], hyps: Sequence[Sequence]) -> float:
  """Fraction of hypotheses exactly equal to their reference."""
  if len(refs) != len(hyps) or not refs:
    raise ValueError(f"need equally many (> 0) references and hypotheses, got {len(refs)} and {len(hyps)}")
  return sum(list(r) == list(h) for r, h in zip(refs, hyps)) / len(refs)
