"""Pictures: attention alignment heatmaps and BLEU by source length."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position


def attention_heatmap(weights_TxS, source_tokens, output_tokens, path: str | None = None, title: str = "", ax=None):
  """Alignment matrix: one row per output token, one column per source token (darker = more weight)."""
  weights = np.asarray(weights_TxS)[:len(output_tokens), :len(source_tokens)]
  own = ax is None
  if own:
    fig, ax = plt.subplots(figsize=(0.45 * len(source_tokens) + 2.0, 0.4 * len(output_tokens) + 1.5))
  ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
  ax.set_xticks(range(len(source_tokens)), source_tokens, rotation=90)
  ax.set_yticks(range(len(output_tokens)), output_tokens)
  ax.tick_params(labelsize=8)
  if title:
    ax.set_title(title, fontsize=9)
  if own:
    fig.tight_layout()
    if path:
      fig.savefig(path, dpi=120)
      plt.close(fig)
  return ax


def bleu_by_length(curves: dict[str, list[dict]], path: str, title: str = ""):
  """One line per model: corpus BLEU of each source-length bucket (`{"label", "bleu", "count"}` dicts)."""
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, buckets in curves.items():
    ax.plot([b["label"] for b in buckets], [b["bleu"] for b in buckets], marker="o", label=name)
  ax.set_xlabel("source sentence length (words)")
  ax.set_ylabel("BLEU")
  ax.set_ylim(bottom=0)
  ax.grid(alpha=0.3)
  ax.legend()
  if title:
    ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
