"""Connectionist temporal classification (Graves et al. 2006): loss wrapper, decoding, error rates.

The loss is optax's (`optax.ctc_loss`); this module adds the lengths-based wrapper
the rest of rnn_jax uses, and the host-side decoders and metrics:

  loss_B = ctc_loss(logits_BxTxV, lengths_B, labels_BxL, label_lengths_B)
  hyps = best_path(logits_BxTxV, lengths_B)                  # greedy: argmax, merge repeats, drop blanks
  hyps = prefix_beam_search(log_probs_TxV, beam_size=8)    # one sequence; list of (labels, log_prob)
  cer = error_rate(refs, hyps)                              # sum of edit distances / sum of reference lengths

Label 0 is the blank unless `blank` says otherwise; labels are ints in `[0, V)`.
"""

from __future__ import annotations

import collections
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
  path_BxT = np.asarray(jnp.argmax(scores_BxTxV, axis=-1))
  steps = path_BxT.shape[1]
  lengths = np.full(path_BxT.shape[0], steps) if lengths_B is None else np.asarray(lengths_B)
  labels, frames = [], []
  for path, length in zip(path_BxT, lengths):
    path = path[:length]
    starts = np.flatnonzero((path != blank) & (path != np.concatenate([[-1], path[:-1]])))
    labels.append(path[starts].tolist())
    frames.append(starts.tolist())
  return BestPath(labels, frames)


def _logaddexp(*xs):
  top = max(xs)
  if top == -np.inf:
    return -np.inf
  return top + np.log(sum(np.exp(x - top) for x in xs))


def prefix_beam_search(log_probs_TxV, beam_size: int = 8, blank: int = 0, length: int | None = None,
                       prune: float = -12.0) -> list[tuple[tuple, float]]:
  """CTC prefix beam search over one sequence (Hannun et al. 2014, no language model).

  Each prefix keeps two log-probabilities: of the frames so far ending in a blank and
  ending in its last label, so that paths collapsing to the same labels are summed.
  Labels whose log-probability at a frame is below `prune` are skipped there (the
  most likely label at each frame is always kept).

  Args:
    log_probs_TxV: per-frame log-probabilities (log-softmax of the logits).
    length: number of valid frames (default all).
  Returns:
    Up to `beam_size` `(labels, log_prob)` pairs, most probable first.
  """
  if beam_size < 1:
    raise ValueError(f"beam_size must be >= 1, got {beam_size}")
  log_probs = np.asarray(log_probs_TxV, np.float64)[:length]
  beams = {(): (0.0, -np.inf)}  # prefix -> (log p ending in blank, log p ending in a label)
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


def beam_search(log_probs_BxTxV, lengths_B=None, beam_size: int = 8, blank: int = 0) -> list[list[int]]:
  """The best prefix-beam-search labels of each sequence in a batch."""
  log_probs = np.asarray(log_probs_BxTxV)
  lengths = np.full(log_probs.shape[0], log_probs.shape[1]) if lengths_B is None else np.asarray(lengths_B)
  return [list(prefix_beam_search(lp, beam_size, blank, int(n))[0][0]) for lp, n in zip(log_probs, lengths)]


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
