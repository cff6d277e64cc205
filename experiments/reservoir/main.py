r"""Echo-state network on Mackey-Glass (tau = 17): free-running prediction, NRMSE at 84 steps.

  python -m experiments.reservoir.main --out_dir=runs/reservoir

Protocol and plot: experiments/reservoir/esn.py. Results: experiments/reservoir/README.md.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from experiments import command_line
from experiments.reservoir import esn

_RESERVOIR_SIZE = flags.DEFINE_integer("reservoir_size", 1000, "Reservoir units N.", lower_bound=1)
_SPECTRAL_RADIUS = flags.DEFINE_float("spectral_radius", 0.95, "Largest |eigenvalue| of the reservoir matrix.")
_CONNECTIVITY = flags.DEFINE_float("connectivity", 0.01, "Fraction of nonzero reservoir weights.")
_FEEDBACK_SCALING = flags.DEFINE_float("feedback_scaling", 0.56, "Output-feedback weights are U(-s, s).")
_BIAS_SCALING = flags.DEFINE_float("bias_scaling", 0.1, "Reservoir bias is U(-s, s).")
_LEAK_RATE = flags.DEFINE_float("leak_rate", 1.0, "Leaky-integration rate a in (0, 1].")
_RIDGE = flags.DEFINE_float("ridge", 1e-10, "Ridge-regression penalty on the readout.", lower_bound=0.0)
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 3000, "Teacher-forced steps used to fit the readout.",
                                   lower_bound=1)
_WASHOUT = flags.DEFINE_integer("washout", 1000, "Initial steps discarded before fitting.", lower_bound=0)
_SYNC = flags.DEFINE_integer("sync", 500, "Teacher-forced steps before each free-running test.", lower_bound=1)
_HORIZON = flags.DEFINE_integer("horizon", 84, "Free-running steps at which NRMSE is reported.", lower_bound=1)
_PLOT_STEPS = flags.DEFINE_integer("plot_steps", 300, "Free-running steps shown in the plot.", lower_bound=1)
_TEST_RUNS = flags.DEFINE_integer("test_runs", 100, "Independent test series.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed for the series and the reservoir.")
_OUT_DIR = flags.DEFINE_string("out_dir", "runs/reservoir", "Where results.json and the PNG go.")


def main(argv):
  command_line.require_experiments_extra(("matplotlib",))
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _SPECTRAL_RADIUS.value <= 0:
    raise app.UsageError(f"--spectral_radius must be > 0, got {_SPECTRAL_RADIUS.value}")
  if _WASHOUT.value >= _TRAIN_STEPS.value:
    raise app.UsageError(f"--washout ({_WASHOUT.value}) must be below --train_steps ({_TRAIN_STEPS.value}): "
                         "the readout is fitted on the steps after it")
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  options = dict(
      reservoir_size=_RESERVOIR_SIZE.value, spectral_radius=_SPECTRAL_RADIUS.value, connectivity=_CONNECTIVITY.value,
      feedback_scaling=_FEEDBACK_SCALING.value, bias_scaling=_BIAS_SCALING.value, leak_rate=_LEAK_RATE.value,
      ridge=_RIDGE.value, train_steps=_TRAIN_STEPS.value, washout=_WASHOUT.value, sync=_SYNC.value,
      horizon=_HORIZON.value, plot_steps=_PLOT_STEPS.value, test_runs=_TEST_RUNS.value, seed=_SEED.value)
  results = esn.train_and_evaluate(**options)
  with open(os.path.join(_OUT_DIR.value, "results.json"), "w") as f:
    json.dump({"options": options, **results}, f)
  esn.plot(results, _HORIZON.value, os.path.join(_OUT_DIR.value, "mackey_glass.png"))
  print(f"N={options['reservoir_size']}: NRMSE{_HORIZON.value} = {results['nrmse84']:.3e} "
        f"(log10 {results['log10_nrmse84']:.2f}), train NRMSE {results['train_nrmse']:.2e}, "
        f"spectral radius {results['measured_spectral_radius']:.4f}; wrote {_OUT_DIR.value}")


if __name__ == "__main__":
  command_line.quiet_library_logs()
  app.run(main)
