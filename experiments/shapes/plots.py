"""The shapes experiment's figure: each example's predictions against its targets on held-out data."""

from __future__ import annotations

import numpy as np


def predictions(runs: dict, path: str) -> None:
  """One row per example (`{title: {"target": [...], "prediction": [...], metrics}}`): the targets (black) and
  the model's outputs (red crosses) of the first held-out examples, one after another."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(len(runs), 1, figsize=(10, 2.1 * len(runs)), squeeze=False)
  for ax, (title, run) in zip(axes[:, 0], runs.items()):
    target, prediction = np.asarray(run["target"]), np.asarray(run["prediction"])
    positions = np.arange(len(target))
    ax.plot(positions, target, "ko", ms=5, mfc="none", label="target")
    ax.plot(positions, prediction, "rx", ms=4, label="prediction")
    wrong = int(np.sum(target != prediction))
    metric = ", ".join(f"{k} {v:.3f}" for k, v in run.items() if k in ("token_accuracy", "accuracy", "exact_match"))
    ax.set_title(f"{title}: held-out {metric} ({wrong} of the {len(target)} shown wrong)", fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
  axes[-1, 0].set_xlabel("position (held-out examples one after another)")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
