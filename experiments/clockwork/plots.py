"""The clockwork experiment's figure: each model's best output against the target, and the training curves."""

from __future__ import annotations

import numpy as np

COLOURS = {"clockwork": "C0", "lstm": "C1", "elman": "C2"}


def waveforms(target_T, runs: list[dict], path: str) -> None:
  """One row per model (target and its best run's output), then the training NMSE of every run in `runs`."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  models = list(dict.fromkeys(r["model"] for r in runs))
  fig, axes = plt.subplots(len(models) + 1, 1, figsize=(9, 2.2 * (len(models) + 1)))
  for ax, name in zip(axes, models):
    best = min((r for r in runs if r["model"] == name), key=lambda r: r["nmse"])
    ax.plot(target_T, "k-", lw=1.5, label="target")
    ax.plot(best["output"], "r-", lw=1, label=f"{name} ({best['num_params']} params)")
    ax.set_title(f"{name}: best NMSE {best['nmse']:.2g}", fontsize=9)
    ax.legend(loc="upper right", fontsize=7)
  for name in models:
    for i, r in enumerate(r for r in runs if r["model"] == name):
      steps, losses = np.asarray(r["loss_curve"]).T
      axes[-1].semilogy(steps, losses, color=COLOURS.get(name), alpha=0.7, label=name if i == 0 else None)
  axes[-1].set_xlabel("training step")
  axes[-1].set_ylabel("training NMSE")
  axes[-1].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
