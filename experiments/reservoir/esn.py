"""Echo-state network on Mackey-Glass (tau = 17): the protocol, the run's workdir, the plot.

The protocol follows Jaeger & Haas (2004): one series is used to train the readout (teacher forcing,
`washout` steps discarded), in closed form rather than by gradient steps; then, for each of `test_runs` fresh
series, the reservoir is driven by the teacher for `sync` steps from a zero state and runs free;
NRMSE84 = sqrt(mean over runs of (y - d)^2 at the 84th free step / var(d)), in the series' own units.
Everything runs in float64. The workdir holds `config.json`, `metrics.jsonl` and `tensorboard/` (the run's
figures, as a trained run's), `results.json` and `mackey_glass.png`.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import train
from rnn_jax.data.mackey_glass import mackey_glass
from rnn_jax.train import hparams
from rnn_jax.train import workdir as workdir_lib
from experiments.reservoir import model


def validate(config) -> None:
  """Fails at start, naming the field, on values the experiment cannot use."""
  if config.model.spectral_radius <= 0:
    raise ValueError(f"config.model.spectral_radius must be > 0, got {config.model.spectral_radius}")
  if not 0 < config.model.leak_rate <= 1:
    raise ValueError(f"config.model.leak_rate must be in (0, 1], got {config.model.leak_rate}")
  if config.model.ridge < 0:
    raise ValueError(f"config.model.ridge must be >= 0, got {config.model.ridge}")
  for field in ("model.size", "eval.sync", "eval.horizon", "eval.plot_steps", "eval.test_runs"):
    group, name = field.split(".")
    if config[group][name] <= 0:
      raise ValueError(f"config.{field} must be > 0, got {config[group][name]}")
  if config.data.fit_length <= 0 or config.data.washout < 0:
    raise ValueError(f"config.data needs fit_length > 0 and washout >= 0, got {config.data.fit_length} and "
                     f"{config.data.washout}")


def train_and_evaluate(config) -> dict:
  """Fits the readout and runs the free-running tests. Returns the figures and the curves."""
  m, e = config.model, config.eval
  with jax.enable_x64(True):
    k_train, k_reservoir, k_test = jax.random.split(jax.random.key(config.seed), 3)
    series_1xTx1 = mackey_glass(k_train, config.data.washout + config.data.fit_length)[None, :, None]
    variance = float(jnp.var(series_1xTx1))
    cell, params = model.init(m, k_reservoir)
    w_Fx1, fitted = model.fit_readout(cell, params, series_1xTx1, config.data.washout, m.ridge)
    train_nrmse = model.nrmse(fitted, series_1xTx1[:, config.data.washout:], variance)

    steps = max(e.horizon, e.plot_steps)
    test_RxSx1 = mackey_glass(k_test, e.sync + steps, batch_shape=(e.test_runs,))[..., None]
    outputs_RxSx1 = model.free_run(cell, params, w_Fx1, test_RxSx1[:, :e.sync], steps)
    errors_RxS = (outputs_RxSx1 - test_RxSx1[:, e.sync:])[..., 0]
    nrmse_by_step = np.sqrt(np.mean(np.square(np.asarray(errors_RxS)), axis=0) / variance)
    return {
        "nrmse84": float(nrmse_by_step[e.horizon - 1]),
        "log10_nrmse84": float(np.log10(nrmse_by_step[e.horizon - 1])),
        "train_nrmse": float(train_nrmse),
        "measured_spectral_radius": model.spectral_radius(params["w_h"]),
        "nrmse_by_step": nrmse_by_step.tolist(),
        "example_truth": np.asarray(test_RxSx1[0, e.sync - 100:, 0]).tolist(),
        "example_prediction": np.asarray(outputs_RxSx1[0, :, 0]).tolist(),
    }


def run(config, workdir: str) -> dict:
  """Fits and tests the network; writes the workdir's files and returns the results."""
  validate(config)
  with workdir_lib.locked(workdir):
    workdir_lib.save_config(config, workdir)
    hparams.write(config, os.path.join(workdir, "tensorboard"))
    results = train_and_evaluate(config)
    figures = {k: results[k] for k in ("nrmse84", "log10_nrmse84", "train_nrmse", "measured_spectral_radius")}
    writer = workdir_lib.MetricWriter(workdir, 0)
    writer.write(0, figures, evaluation=True)  # step 0: the readout takes no gradient steps
    writer.close()
    plot(results, config.eval.horizon, os.path.join(workdir, "mackey_glass.png"))
    train.write_results(workdir, figures)
  print(f"N={config.model.size}: NRMSE{config.eval.horizon} = {results['nrmse84']:.3e} "
        f"(log10 {results['log10_nrmse84']:.2f}), train NRMSE {results['train_nrmse']:.2e}, "
        f"spectral radius {results['measured_spectral_radius']:.4f}; wrote {workdir}")
  return results


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
