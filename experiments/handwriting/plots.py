"""PNG pictures of pen strokes: samples, CTC alignments, and synthesis with its attention window."""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from rnn_jax.data import strokes


def draw(ax, points_Nx3: np.ndarray, color="black", width: float = 1.5):
  """Draws offsets as pen strokes (a gap at every pen-up), equal aspect, no axes."""
  for stroke in strokes.to_strokes(points_Nx3):
    ax.plot(stroke[:, 0], stroke[:, 1], "-", color=color, lw=width, solid_capstyle="round")
  ax.set_aspect("equal")
  ax.axis("off")


def _save(fig, path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=80, bbox_inches="tight")
  plt.close(fig)
  return path


def samples(path: str, items: Sequence[tuple[np.ndarray, str]], columns: int = 2) -> str:
  """A grid of `(points_Nx3, title)` drawings."""
  rows = -(-len(items) // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 1.4 * rows), squeeze=False)
  for ax, (points, title) in zip(axes.ravel(), items):
    draw(ax, points)
    ax.set_title(title, fontsize=9)
  for ax in axes.ravel()[len(items):]:
    ax.axis("off")
  return _save(fig, path)


def alignment(path: str, items: Sequence[dict]) -> str:
  """CTC alignments: each item has `points` (raw units), `probs_TxV` (per frame), `frames` (emission frame of
  each decoded label), `decoded` (str), `target` (str), `subsample` (points per frame), `chars` (alphabet).

  Top: the strokes with each decoded character placed at the point where CTC emits it.
  Bottom: per-frame probabilities of the classes that occur (blank in grey).
  """
  fig, axes = plt.subplots(2 * len(items), 1, figsize=(7, 3.4 * len(items)), squeeze=False,
                           gridspec_kw={"height_ratios": [2.4, 1] * len(items)})
  for k, item in enumerate(items):
    ax, bx = axes[2 * k, 0], axes[2 * k + 1, 0]
    draw(ax, item["points"], color="0.45")
    xy = np.cumsum(item["points"][:, :2], axis=0)
    for char, frame in zip(item["decoded"], item["frames"]):
      at = xy[min(frame * item["subsample"], len(xy) - 1)]
      ax.plot(*at, "o", color="tab:red", ms=4)
      ax.annotate(char, at, xytext=(0, 6), textcoords="offset points", color="tab:red", ha="center", fontsize=11)
    ax.set_title(f"target {item['target']!r}   decoded {item['decoded']!r}", fontsize=9)
    probs = item["probs_TxV"]
    used = sorted(set(np.argmax(probs, axis=-1).tolist()) - {0})
    bx.plot(probs[:, 0], color="0.7", lw=1, label="blank")
    for c in used:
      bx.plot(probs[:, c], lw=1.2, label=item["chars"][c - 1])
    bx.set_xlim(0, len(probs) - 1)
    bx.set_ylim(0, 1.02)
    bx.set_xlabel("frame")
    bx.legend(ncol=min(len(used) + 1, 10), fontsize=7, loc="upper right", frameon=False)
  fig.tight_layout()
  return _save(fig, path)


def synthesis(path: str, items: Sequence[dict], columns: int = 1) -> str:
  """Synthesised handwriting: each item has `points` (raw units), `phi_SxU`, `text` (and optionally `title`).

  Under each drawing, the soft window phi over the characters (rows) at every pen step
  (columns). Items fill a grid row by row.
  """
  rows = -(-len(items) // columns)
  fig, axes = plt.subplots(2 * rows, columns, figsize=(5 * columns, 2.9 * rows), squeeze=False,
                           gridspec_kw={"height_ratios": [2.2, 1] * rows})
  for k in range(rows * columns):
    ax, bx = axes[2 * (k // columns), k % columns], axes[2 * (k // columns) + 1, k % columns]
    if k >= len(items):
      ax.axis("off")
      bx.axis("off")
      continue
    item = items[k]
    draw(ax, item["points"])
    ax.set_title(item.get("title", repr(item["text"])), fontsize=9)
    phi = np.asarray(item["phi_SxU"])[:, :len(item["text"]) + 1].T
    bx.imshow(phi, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")
    bx.set_yticks(range(len(item["text"]) + 1), list(item["text"]) + ["end"], fontsize=6)
    bx.set_xlabel("pen step", fontsize=8)
  fig.tight_layout()
  return _save(fig, path)
