"""Echo-state network of 1000 units on Mackey-Glass (tau = 17), as Jaeger & Haas (2004).

  python -m experiments.reservoir.main --workdir=runs/reservoir

Reaches NRMSE84 = 6.2e-5 (log10 -4.21) in free-running prediction (experiments/reservoir/README.md); other seeds
6e-5 to 2.7e-4, and `--config.model.size=500` 2.8e-4.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                      # seeds the training series, the reservoir and the test series

  c.model = ml_collections.ConfigDict()
  c.model.size = 1000             # reservoir units N
  c.model.spectral_radius = 0.95  # largest |eigenvalue| of the reservoir matrix
  c.model.connectivity = 0.01     # fraction of nonzero reservoir weights
  c.model.feedback_scaling = 0.56  # output-feedback weights are U(-s, s)
  c.model.bias_scaling = 0.1      # reservoir bias is U(-s, s)
  c.model.leak_rate = 1.0         # leaky-integration rate a in (0, 1] (1: no leak)
  c.model.ridge = 1e-10           # ridge-regression penalty of the closed-form readout

  c.data = ml_collections.ConfigDict()
  c.data.washout = 1000           # teacher-forced steps at the start of the training series, discarded
  c.data.fit_length = 3000        # teacher-forced steps after the washout on which the readout is fitted

  c.eval = ml_collections.ConfigDict()
  c.eval.sync = 500               # teacher-forced steps before each free-running test
  c.eval.horizon = 84             # free-running step at which NRMSE is reported
  c.eval.plot_steps = 300         # free-running steps shown in the plot
  c.eval.test_runs = 100          # independent test series
  return c
