"""PNG pictures of a trained recogniser: log-mel spectrograms with the CTC emission path, and digit confusions.

  emissions(path, items)             # items: log_mel_TxM, log_probs_TxV, subsample, hop_ms, target, decoded
  confusions(path, refs, hyps)       # digit strings; substitutions, deletions and insertions counted
"""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

DIGITS = "0123456789"
NONE = "-"   # the row of insertions and the column of deletions


def _save(fig, path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=70, bbox_inches="tight")
  plt.close(fig)
  return path


def emissions(path: str, items: Sequence[dict]) -> str:
  """For each item, the log-mel spectrogram with each decoded digit written where CTC emits it (its most
  probable frame; red lines), over the per-step probabilities of blank (grey) and of the digits emitted."""
  fig, axes = plt.subplots(2 * len(items), 1, figsize=(7, 3.2 * len(items)), squeeze=False,
                           gridspec_kw={"height_ratios": [2.2, 1] * len(items)})
  for k, item in enumerate(items):
    ax, bx = axes[2 * k, 0], axes[2 * k + 1, 0]
    seconds_per_step = item["subsample"] * item["hop_ms"] / 1000
    log_mel = item["log_mel_TxM"]
    ax.imshow(log_mel.T, origin="lower", aspect="auto", cmap="magma",
              extent=(0, len(log_mel) * item["hop_ms"] / 1000, 0, log_mel.shape[1]))
    probs = np.exp(item["log_probs_TxV"])
    best = np.argmax(probs, axis=-1)
    for step in _emission_steps(best):
      at = (step + 0.5) * seconds_per_step
      ax.axvline(at, color="tab:red", lw=1)
      ax.text(at, log_mel.shape[1] * 0.92, DIGITS[best[step] - 1], color="white", ha="center", fontsize=12,
              bbox={"facecolor": "tab:red", "edgecolor": "none", "pad": 1.5})
    ax.set_ylabel("mel band")
    ax.set_title(f"spoken {item['target']}   decoded {item['decoded']}", fontsize=10)
    times = (np.arange(len(probs)) + 0.5) * seconds_per_step
    bx.plot(times, probs[:, 0], color="0.7", lw=1, label="blank")
    for label in sorted(set(best.tolist()) - {0}):
      bx.plot(times, probs[:, label], lw=1.2, label=DIGITS[label - 1])
    bx.set_xlim(ax.get_xlim())
    bx.set_ylim(0, 1.02)
    bx.set_xlabel("seconds")
    bx.set_ylabel("P(label)")
    bx.legend(ncol=11, fontsize=7, loc="upper right", frameon=False)
  fig.tight_layout()
  return _save(fig, path)


def _emission_steps(best_T: np.ndarray) -> list[int]:
  """The step at which the best path emits each label: the first step of each run of a non-blank label."""
  return [t for t in range(len(best_T)) if best_T[t] != 0 and (t == 0 or best_T[t - 1] != best_T[t])]


def align(ref: str, hyp: str) -> list[tuple[str, str]]:
  """A minimum edit-distance alignment: `(ref, hyp)` pairs, `NONE` on the side of an insertion or deletion."""
  cost = np.zeros((len(ref) + 1, len(hyp) + 1), int)
  cost[:, 0], cost[0, :] = np.arange(len(ref) + 1), np.arange(len(hyp) + 1)
  for i in range(1, len(ref) + 1):
    for j in range(1, len(hyp) + 1):
      cost[i, j] = min(cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]), cost[i - 1, j] + 1, cost[i, j - 1] + 1)
  pairs, i, j = [], len(ref), len(hyp)
  while i or j:
    if i and j and cost[i, j] == cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
      pairs.append((ref[i - 1], hyp[j - 1]))
      i, j = i - 1, j - 1
    elif i and cost[i, j] == cost[i - 1, j] + 1:
      pairs.append((ref[i - 1], NONE))
      i -= 1
    else:
      pairs.append((NONE, hyp[j - 1]))
      j -= 1
  return pairs[::-1]


def confusion_counts(refs: Sequence[str], hyps: Sequence[str]) -> np.ndarray:
  """`[11, 11]` counts: row = spoken digit (last: inserted), column = decoded digit (last: deleted)."""
  symbols = DIGITS + NONE
  counts = np.zeros((11, 11), int)
  for ref, hyp in zip(refs, hyps):
    for r, h in align(ref, hyp):
      counts[symbols.index(r), symbols.index(h)] += 1
  return counts


def confusions(path: str, refs: Sequence[str], hyps: Sequence[str], title: str = "") -> str:
  """The confusion matrix of `confusion_counts`, as counts, shaded per row."""
  counts = confusion_counts(refs, hyps)
  shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
  fig, ax = plt.subplots(figsize=(6, 5.4))
  ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
  for (r, h), n in np.ndenumerate(counts):
    if n:
      ax.text(h, r, str(n), ha="center", va="center", fontsize=7, color="white" if shares[r, h] > 0.5 else "black")
  ticks = list(DIGITS) + ["none"]
  ax.set_xticks(range(11), ticks)
  ax.set_yticks(range(11), ticks)
  ax.set_xlabel("decoded (none: deleted)")
  ax.set_ylabel("spoken (none: inserted)")
  ax.set_title(title or f"digit confusions, {len(refs)} utterances", fontsize=10)
  return _save(fig, path)
