r"""Clockwork RNN vs LSTM vs tanh RNN: generate a waveform from no input (Koutník et al. 2014, sec. 4.1).

  python -m experiments.clockwork.main --out_dir=runs/clockwork

Sizes give all three about the same number of trainable parameters (~1,000 by
default: clockwork 8 modules x 5 units, LSTM 15 units, tanh RNN 30 units, readouts
included). Every model gets the same learning-rate sweep; its best rate (mean NMSE over
seeds) is reported. Writes results.json, results.md and waveforms.png. Models and
training: experiments/clockwork/waveform.py. Results: experiments/clockwork/README.md.
"""

from __future__ import annotations

import json
import os

from absl import app, flags
import numpy as np

from experiments import command_line
from experiments.clockwork import waveform

_LENGTH = flags.DEFINE_integer("length", 320, "Steps of the target waveform.", lower_bound=2)
_STEPS = flags.DEFINE_integer("steps", 3000, "Training steps (full batch: the one sequence).", lower_bound=1)
_LEARNING_RATES = flags.DEFINE_list("learning_rates", ["1e-3", "3e-3", "1e-2"],
                                    "Adam learning rates tried per model; the best (mean over seeds) is reported.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Initialisation seeds per model.")
_WAVEFORM_SEED = flags.DEFINE_integer("waveform_seed", 0, "Seed of the target waveform.")
_CLOCKWORK_SIZE = flags.DEFINE_integer("clockwork_size", 40, "Clockwork hidden units (multiple of the modules).",
                                      lower_bound=1)
_PERIODS = flags.DEFINE_list("periods", ["1", "2", "4", "8", "16", "32", "64", "128"], "Clockwork module periods.")
_LSTM_SIZE = flags.DEFINE_integer("lstm_size", 15, "LSTM hidden units.", lower_bound=1)
_ELMAN_SIZE = flags.DEFINE_integer("elman_size", 30, "tanh RNN hidden units.", lower_bound=1)
_OUT_DIR = flags.DEFINE_string("out_dir", "runs/clockwork", "Where results and the plot go.")


def main(argv):
  command_line.require_experiments_extra(("matplotlib",))
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    periods, seeds = [int(p) for p in _PERIODS.value], [int(s) for s in _SEEDS.value]
    learning_rates = [float(lr) for lr in _LEARNING_RATES.value]
  except ValueError as e:
    raise app.UsageError(f"--periods and --seeds take integers, --learning_rates numbers: {e}") from None
  if not (periods and seeds and learning_rates):
    raise app.UsageError("--periods, --seeds and --learning_rates need at least one value each")
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  target_T = waveform.target_waveform(_LENGTH.value, _WAVEFORM_SEED.value)
  sizes = {"clockwork": _CLOCKWORK_SIZE.value, "lstm": _LSTM_SIZE.value, "elman": _ELMAN_SIZE.value}
  runs = []
  for model in waveform.MODELS:
    for learning_rate in learning_rates:
      for seed in seeds:
        run = waveform.train_one(model, target_T, hidden_size=sizes[model], periods=periods,
                                 steps=_STEPS.value, learning_rate=learning_rate, seed=seed)
        run["learning_rate"] = learning_rate
        print(f"{model} (H={sizes[model]}, {run['num_params']} params) lr {learning_rate:g} seed {seed}: "
              f"NMSE {run['nmse']:.4f}", flush=True)
        runs.append(run)
  best_runs = []
  for model in waveform.MODELS:
    mine = [r for r in runs if r["model"] == model]
    best_lr = min({r["learning_rate"] for r in mine},
                  key=lambda lr: np.mean([r["nmse"] for r in mine if r["learning_rate"] == lr]))
    best_runs += [r for r in mine if r["learning_rate"] == best_lr]
  with open(os.path.join(_OUT_DIR.value, "results.json"), "w") as f:
    json.dump({"target": target_T.tolist(), "periods": periods, "runs": runs}, f)
  lines = ["| model | hidden | params | best lr | NMSE per seed | mean NMSE |", "|---|---|---|---|---|---|"]
  for model in waveform.MODELS:
    mine = [r for r in best_runs if r["model"] == model]
    lines.append(f"| {model} | {sizes[model]} | {mine[0]['num_params']} | {mine[0]['learning_rate']:g} | "
                 + ", ".join(f"{r['nmse']:.5f}" for r in mine) + f" | {np.mean([r['nmse'] for r in mine]):.5f} |")
  with open(os.path.join(_OUT_DIR.value, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  waveform.plot(target_T, best_runs, os.path.join(_OUT_DIR.value, "waveforms.png"))
  print("\n".join(lines))


if __name__ == "__main__":
  command_line.quiet_library_logs()
  app.run(main)
