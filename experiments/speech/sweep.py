"""Graves et al. (2013)'s question at this scale: how do depth and direction trade off at an equal parameter count?

  python -m experiments.speech.main --mode=sweep --workdir=runs/speech/sweep [--config=...]

One training run (`speech.run`) per (depth, direction) of `config.sweep`, each in its own sub-workdir
`depth{L}_{uni|bi}` (resumed like any run), with the hidden size whose parameter count is closest to
`config.sweep.parameters` (0: that of `config.model`). The table goes to `sweep.json` and `sweep.md`.
"""

from __future__ import annotations

import copy
import json
import os

import numpy as np

from experiments import command_line
from experiments.speech import features, model, speech

DIRECTIONS = {"uni": False, "bi": True}


def parameter_count(model_cfg, feature_size: int) -> int:
  return command_line.parameter_count(lambda key: (model.init(key, model_cfg, feature_size), None))


def matched_hidden_size(model_cfg, feature_size: int, target: int) -> int:
  """The hidden size (>= 1) whose model has the parameter count closest to `target`.

  A stack's count is a quadratic in the hidden size (weights from the layer below and recurrent weights grow
  with its square), so three counts give it exactly.
  """
  def count(hidden):
    sized = copy.deepcopy(model_cfg)
    sized.hidden_size = hidden
    return parameter_count(sized, feature_size)
  a, b, c = np.polyfit([1, 2, 3], [count(1), count(2), count(3)], 2)
  root = max(np.roots([a, b, c - target]).real)
  quadratic = lambda h: a * h * h + b * h + c
  return min((max(1, int(np.floor(root))), max(1, int(np.ceil(root)))), key=lambda h: abs(quadratic(h) - target))


def points(config) -> list[tuple[str, object]]:
  """`(name, config)` of every sweep point, each with its matched hidden size."""
  feature_size = features.spec_from_config(config.features).size
  target = config.sweep.parameters or parameter_count(config.model, feature_size)
  out = []
  for depth in config.sweep.depths:
    for direction in config.sweep.directions:
      if direction not in DIRECTIONS:
        raise ValueError(f"config.sweep.directions: {direction!r} is not one of {sorted(DIRECTIONS)}")
      point = copy.deepcopy(config)
      point.model.num_layers, point.model.bidirectional = int(depth), DIRECTIONS[direction]
      point.model.hidden_size = matched_hidden_size(point.model, feature_size, target)
      out.append((f"depth{depth}_{direction}", point))
  return out


def run(config, workdir: str) -> list[dict]:
  """Trains and tests every point (resuming each from its sub-workdir); writes and returns the table."""
  speech.validate(config)
  feature_size = features.spec_from_config(config.features).size
  rows = []
  for name, point in points(config):
    results = speech.run(point, os.path.join(workdir, name))
    rows.append({"point": name, "layers": point.model.num_layers, "bidirectional": point.model.bidirectional,
                 "hidden_size": point.model.hidden_size, "parameters": parameter_count(point.model, feature_size),
                 "test_best_path_der": results["test_best_path_der"], "test_beam_der": results["test_beam_der"],
                 "test_beam_string_acc": results["test_beam_string_acc"]})
    _write_table(workdir, rows)
  return rows


def _write_table(workdir: str, rows: list[dict]) -> None:
  with open(os.path.join(workdir, "sweep.json"), "w") as f:
    json.dump(rows, f, indent=1)
  lines = ["| layers | direction | hidden | parameters | digit error, best path | digit error, beam | "
           "string accuracy, beam |", "|---|---|---|---|---|---|---|"]
  lines += [f"| {r['layers']} | {'bi' if r['bidirectional'] else 'uni'} | {r['hidden_size']} | {r['parameters']:,} | "
            f"{100 * r['test_best_path_der']:.2f} % | {100 * r['test_beam_der']:.2f} % | "
            f"{100 * r['test_beam_string_acc']:.1f} % |" for r in rows]
  with open(os.path.join(workdir, "sweep.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
