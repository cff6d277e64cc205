"""Echo-state network on Mackey-Glass (tau = 17): the protocol and the plot.

The protocol follows Jaeger & Haas (2004): one series is used to train the readout
(teacher forcing, `washout` steps discarded); then, for each of `test_runs` fresh
series, the reservoir is driven by the teacher for `sync` steps from a zero state and
runs free; NRMSE84 = sqrt(mean over runs of (y - d)^2 at the 84th free step / var(d)).
The signal is squashed to `tanh(x - 1)` for the network and mapped back by
`arctanh(y) + 1` before errors are measured (in the series' own units).
Everything runs in float64. Launcher: experiments/reservoir/main.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import cells
from rnn_jax.cells import reservoir
from rnn_jax.data.mackey_glass import mackey_glass
def _squash(x):
  return jnp.tanh(x - 1.0)


def _unsquash(y):
  return jnp.arctanh(jnp.clip(y, -1.0 + 1e-12, 1.0 - 1e-12)) + 1.0


def train_and_evaluate(*, reservoir_size=1000, spectral_radius=0.95, connectivity=0.01, feedback_scaling=0.56,
                       bias_scaling=0.1, leak_rate=1.0, ridge=1e-10, train_steps=3000, washout=1000, sync=500,
                       horizon=84, plot_steps=300, test_runs=100, seed=0):
  """Trains the readout and runs the free-running tests. Returns a dict of results and curves."""
  with jax.enable_x64(True):
    k_train, k_reservoir, k_test = jax.random.split(jax.random.key(seed), 3)
    series_1xTx1 = mackey_glass(k_train, washout + train_steps)[None, :, None]
    variance = float(jnp.var(series_1xTx1))
    cell = cells.get("reservoir", spectral_radius=spectral_radius, connectivity=connectivity, feedback_size=1,
                     feedback_scaling=feedback_scaling, bias_scaling=bias_scaling, leak_rate=leak_rate)
    params = cell.init(k_reservoir, 1, reservoir_size)
    targets_1xTx1 = _squash(series_1xTx1)
    _, states_1xTxN = reservoir.teacher_forced_states(cell, params, targets_1xTx1)
    w_Fx1 = reservoir.fit_readout(reservoir.features(states_1xTxN[:, washout:]), targets_1xTx1[:, washout:], ridge)
    fitted = _unsquash(reservoir.readout(w_Fx1, states_1xTxN[:, washout:]))
    train_nrmse = reservoir.nrmse(fitted, series_1xTx1[:, washout:], variance)

    steps = max(horizon, plot_steps)
    test_RxSx1 = mackey_glass(k_test, sync + steps, batch_shape=(test_runs,))[..., None]
    carry, _ = reservoir.teacher_forced_states(cell, params, _squash(test_RxSx1[:, :sync]))
    _, outputs_RxSx1 = reservoir.generate(cell, params, w_Fx1, carry, _squash(test_RxSx1[:, sync - 1]), steps=steps)
    errors_RxS = (_unsquash(outputs_RxSx1) - test_RxSx1[:, sync:])[..., 0]
    nrmse_by_step = np.sqrt(np.mean(np.square(np.asarray(errors_RxS)), axis=0) / variance)
    return {
        "nrmse84": float(nrmse_by_step[horizon - 1]),
        "log10_nrmse84": float(np.log10(nrmse_by_step[horizon - 1])),
        "train_nrmse": float(train_nrmse),
        "measured_spectral_radius": reservoir.spectral_radius(params["w_h"]),
        "nrmse_by_step": nrmse_by_step.tolist(),
        "example_truth": np.asarray(test_RxSx1[0, sync - 100:, 0]).tolist(),
        "example_prediction": np.asarray(_unsquash(outputs_RxSx1[0, :, 0])).tolist(),
    }


def plot(results, horizon, path):
  """Prediction vs truth for one test series, and NRMSE against the free-running step."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  truth, prediction = np.array(results["example_truth"]), np.array(results["example_prediction"])
  lead = len(truth) - len(prediction)
  fig, (ax_series, ax_error) = plt.subplots(2, 1, figsize=(9, 6.5))
  ax_series.plot(np.arange(1 - lead, len(prediction) + 1), truth, "k-", lw=1.2, label="Mackey-Glass (truth)")
  ax_series.plot(np.arange(1, len(prediction) + 1), prediction, "r--", lw=1.2, label="ESN, free-running")
  ax_series.axvline(0, color="gray", lw=0.8)
  ax_series.axvline(horizon, color="gray", lw=0.8, ls=":")
  ax_series.set_xlabel("step (0 = end of teacher forcing)")
  ax_series.legend(loc="upper left")
  steps = np.arange(1, len(results["nrmse_by_step"]) + 1)
  ax_error.semilogy(steps, results["nrmse_by_step"], "b-")
  ax_error.axvline(horizon, color="gray", lw=0.8, ls=":")
  ax_error.set_xlabel("free-running step")
  ax_error.set_ylabel("NRMSE over test runs")
  ax_error.set_title(f"NRMSE{horizon} = {results['nrmse84']:.2e}")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
