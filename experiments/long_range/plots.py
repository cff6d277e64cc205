"""The long-range experiment's outputs: final error against T as a Markdown table and as a plot."""

from __future__ import annotations

from typing import Callable


def _cell(point: dict | None) -> str:
  if point is None:
    return ""
  if point["diverged"]:
    return "diverged"
  text = f"{point['error']:.4f}"
  if "copy_accuracy" in point:
    text += f" ({100 * point['copy_accuracy']:.0f} %)"
  return text


def results_table(points: list[dict], baseline: Callable[[str, int], float]) -> str:
  """One row per (task, variant), one column per T: the error (copied-symbol accuracy), then the baselines."""
  lengths = sorted({p["length"] for p in points})
  rows = sorted({(p["task"], p["variant"]) for p in points})
  found = {(p["task"], p["variant"], p["length"]): p for p in points}
  lines = ["| task | variant | " + " | ".join(f"T={t}" for t in lengths) + " |",
           "|---|---|" + "---|" * len(lengths)]
  for task, variant in rows:
    lines.append(f"| {task} | {variant} | " + " | ".join(_cell(found.get((task, variant, t))) for t in lengths) + " |")
  for task in sorted({p["task"] for p in points}):
    lines.append(f"| {task} | *baseline* | " + " | ".join(f"{baseline(task, t):.4f}" for t in lengths) + " |")
  return "\n".join(lines) + "\n"


def error_vs_length(points: list[dict], baseline: Callable[[str, int], float], path: str) -> None:
  """Final error against T per variant, one panel per task, baselines dashed."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  task_names = sorted({p["task"] for p in points})
  fig, axes = plt.subplots(1, len(task_names), figsize=(6 * len(task_names), 4.5), squeeze=False)
  for ax, task in zip(axes[0], task_names):
    runs = [p for p in points if p["task"] == task]
    lengths = sorted({p["length"] for p in runs})
    for variant in sorted({p["variant"] for p in runs}):
      mine = [p for p in runs if p["variant"] == variant]
      scored = sorted((p["length"], p["error"]) for p in mine if not p["diverged"])
      diverged = sorted(p["length"] for p in mine if p["diverged"])
      label = variant + (f" (diverged at T={', '.join(map(str, diverged))})" if diverged else "")
      ax.plot(*(zip(*scored) if scored else ((), ())), "o-", label=label)
    ax.plot(lengths, [baseline(task, t) for t in lengths], "k--", lw=2, label="memoryless baseline")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(lengths, [str(t) for t in lengths])
    ax.set_xticks([], minor=True)
    ax.set_xlabel("T")
    ax.set_ylabel("test MSE" if task == "adding" else "test cross-entropy per step (nats)")
    ax.set_title(f"{task} problem")
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
