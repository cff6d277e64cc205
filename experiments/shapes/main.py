r"""Sequence tasks by shape (N -> N tagging, N -> 1 classification, 1 -> N generation).

  python -m experiments.shapes.main --out_dir=runs/shapes

Models and data: experiments/shapes/examples.py. Results: experiments/shapes/README.md.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from experiments import command_line
from experiments.shapes import examples

_STEPS = flags.DEFINE_integer("steps", 1500, "Training steps per task.", lower_bound=1)
_OUT_DIR = flags.DEFINE_string("out_dir", "runs/shapes", "Where results.json goes.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  results = {
      "N->N tagger (bidirectional LSTM)": examples.train_tagger(_STEPS.value, bidirectional=True),
      "N->N tagger (forward LSTM, control)": examples.train_tagger(_STEPS.value, bidirectional=False),
      "N->1 classifier (GRU)": examples.train_classifier(_STEPS.value),
      "1->N decoder (LSTM, greedy)": examples.train_decoder(_STEPS.value),
  }
  with open(os.path.join(_OUT_DIR.value, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  for name, metrics in results.items():
    print(f"{name}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))


if __name__ == "__main__":
  command_line.quiet_library_logs()
  app.run(main)
