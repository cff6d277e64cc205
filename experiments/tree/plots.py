"""The tree experiment's outputs: test accuracy by depth as a Markdown table and as a plot."""

from __future__ import annotations

import numpy as np


def _depths(points: list[dict], least: int = 20) -> list[str]:
  """The depths (as text, in order) with at least `least` test expressions."""
  counts = points[0]["count_by_depth"]
  return sorted((d for d, n in counts.items() if n >= least), key=int)


def results_table(points: list[dict]) -> str:
  """One row per model: hidden units, parameters, test accuracy (%) overall and by depth."""
  depths = _depths(points)
  lines = ["| model | hidden | params | accuracy | " + " | ".join(f"depth {d}" for d in depths) + " |",
           "|---|---|---|---|" + "---|" * len(depths)]
  for p in points:
    lines.append(f"| {p['model']} | {p['hidden_size']} | {p['num_params']} | {100 * p['accuracy']:.1f} | "
                 + " | ".join(f"{100 * p['accuracy_by_depth'][d]:.0f}" for d in depths) + " |")
  lines.append("| *test expressions* | | | | " + " | ".join(str(points[0]["count_by_depth"][d]) for d in depths) + " |")
  return "\n".join(lines) + "\n"


def accuracy_by_depth(points: list[dict], test_labels, train_depth_99: int, path: str) -> None:
  """Test accuracy against expression depth per model, with the majority class and the training depths."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(7, 4.5))
  for p in points:
    depths = _depths([p])
    ax.plot([int(d) for d in depths], [p["accuracy_by_depth"][d] for d in depths], "o-",
            label=f"{p['model']} ({p['num_params']} params): {100 * p['accuracy']:.1f} %")
  majority = np.bincount(test_labels).max() / len(test_labels)
  ax.axhline(majority, color="k", ls="--", lw=1, label="majority class")
  ax.axvline(train_depth_99 + 0.5, color="gray", ls=":", lw=1, label="99th percentile of training depth")
  ax.set_xlabel("expression depth")
  ax.set_ylabel("test accuracy (value mod 10)")
  ax.set_ylim(0, 1.02)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
