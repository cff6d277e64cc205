"""Long-range benchmarks: copy-task generator, the memoryless baselines, that a gated cell learns, the sweep's
outputs and its rerun."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.data import tasks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("length", [1, 7, 50])
def test_copy_task_layout(length):
  x, y = (np.asarray(a) for a in tasks.copy_task(jax.random.key(length), 16, length))
  assert x.shape == y.shape == (16, length + 20) and x.dtype == np.int32
  symbols = x[:, :10]
  assert symbols.min() >= 1 and symbols.max() <= 8
  np.testing.assert_array_equal(x[:, 10:length + 9], 0)
  np.testing.assert_array_equal(x[:, length + 9], 9)  # the delimiter
  np.testing.assert_array_equal(x[:, length + 10:], 0)
  np.testing.assert_array_equal(y[:, :length + 10], 0)
  np.testing.assert_array_equal(y[:, length + 10:], symbols)


@pytest.mark.parametrize("length", [50, 100, 200, 400])
def test_copy_baseline_is_what_the_formula_says(length):
  _, y = tasks.copy_task(jax.random.key(0), 2000, length)
  # The memoryless strategy: blank until the copy phase, then uniform over the 8 symbols.
  probs_LxV = jnp.zeros((length + 20, 10)).at[:length + 10, 0].set(1.0).at[length + 10:, 1:9].set(1 / 8)
  log_probs = jnp.log(jnp.maximum(probs_LxV, 1e-30))
  memoryless = -jnp.mean(jnp.take_along_axis(jnp.broadcast_to(log_probs[None], y.shape + (10,)),
                                              y[..., None], axis=-1))
  assert float(memoryless) == pytest.approx(tasks.copy_baseline_cross_entropy(length), rel=1e-5)
  # And it is the best memoryless predictor: per-position empirical frequencies score the same.
  freq_LxV = jnp.mean(jax.nn.one_hot(y, 10), axis=0)
  entropy = -jnp.sum(freq_LxV * jnp.log(jnp.maximum(freq_LxV, 1e-30))) / (length + 20)
  assert float(entropy) == pytest.approx(tasks.copy_baseline_cross_entropy(length), rel=0.01)


@pytest.mark.parametrize("length", [50, 400])
def test_adding_baseline_is_one_sixth(length):
  _, y = tasks.adding_problem(jax.random.key(length), 50_000, length)
  assert float(jnp.mean((y - 1.0) ** 2)) == pytest.approx(tasks.ADDING_BASELINE_MSE, abs=3e-3)


def _sweep_config(**overrides):
  from experiments.long_range.configs import default  # pylint: disable=g-import-not-at-top
  c = default.get_config()
  c.update(dict(dict(tasks=("copy",), lengths=(5,), variants=("gru_clip",), num_steps=1200, log_every=100,
                     eval_every=600, checkpoint_every=600), **overrides))
  c.data.eval_size = 500
  return c


def test_gru_learns_short_copy_task(tmp_path):
  from experiments.long_range import adding_copy  # pylint: disable=g-import-not-at-top
  (point,) = adding_copy.run(_sweep_config(), str(tmp_path))["points"]
  assert point["error"] < 0.75 * point["baseline"]  # 0.55 vs 0.83 measured
  assert point["copy_accuracy"] > 0.3  # chance is 1/8
  assert point["history"][-1]["valid_error"] == point["error"]
  assert {"config.json", "results.json", "results.md", "error_vs_T.png"} <= set(os.listdir(tmp_path))


def test_a_nan_point_is_recorded_as_diverged_and_not_retrained(tmp_path):
  from experiments.long_range import adding_copy  # pylint: disable=g-import-not-at-top
  config = _sweep_config(tasks=("adding",), variants=("irnn_clip",), num_steps=20, log_every=1)
  config.optimizer.learning_rate = 1e30
  (point,) = adding_copy.run(config, str(tmp_path))["points"]
  assert point["diverged"] and point["error"] is None
  again = adding_copy.train_point(adding_copy.point_config(config, "adding", "irnn_clip", 5),
                                  str(tmp_path / "adding_irnn_clip_T5"))
  assert again == (point, True)


def _files(directory) -> dict:
  return {str(path.relative_to(directory)): path.read_bytes() for path in directory.rglob("*") if path.is_file()}


def test_rerunning_a_finished_sweep_prints_its_results_and_writes_nothing(tmp_path):
  command = [sys.executable, "-m", "experiments.long_range.main", f"--workdir={tmp_path}", "--config.tasks=adding",
             "--config.lengths=4", "--config.variants=lstm", "--config.num_steps=6", "--config.log_every=3",
             "--config.eval_every=6", "--config.checkpoint_every=6", "--config.data.eval_size=8"]
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  first = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
  assert first.returncode == 0, first.stderr[-2000:]
  assert {"config.json", "metrics.jsonl", "tensorboard", "results.json"} <= set(os.listdir(tmp_path / "adding_lstm_T4"))
  before = _files(tmp_path)
  again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
  assert again.returncode == 0, again.stderr[-2000:]
  assert f"{tmp_path} holds a finished sweep" in again.stdout and "| adding | lstm | 0." in again.stdout, again.stdout
  assert "Training steps" not in again.stderr
  assert _files(tmp_path) == before


def test_synthetic_train_step_is_the_experiments_loss_on_sequences_of_the_given_length():
  from experiments import long_range  # pylint: disable=g-import-not-at-top
  step = long_range.synthetic_train_step(4, 30, variant="tanh_orthogonal_clip", task="copy", hidden_size=8)
  x, y = step.batch
  assert x.shape == (4, 50, 10) and y.shape == (4, 50) and step.tokens == 4 * 30
  loss, (metrics, _) = step.loss_fn(step.state.params, None, step.batch, None, True)
  assert abs(float(loss) - np.log(10)) < 0.5 and "copy_accuracy" in metrics  # near-uniform at init


def test_table_and_plot_are_written(tmp_path):
  from experiments.long_range import adding_copy, plots  # pylint: disable=g-import-not-at-top
  points = [{"task": task, "variant": variant, "length": t, "error": e, "diverged": e is None,
             **({"copy_accuracy": 0.5} if task == "copy" else {})}
            for task, variant, t, e in [("adding", "lstm", 50, 0.01), ("adding", "lstm", 100, None),
                                        ("copy", "gru_clip", 50, 0.2)]]
  table = plots.results_table(points, adding_copy.baseline)
  plots.error_vs_length(points, adding_copy.baseline, str(tmp_path / "plot.png"))
  assert "| adding | lstm | 0.0100 | diverged |" in table and "0.2000 (50 %)" in table
  assert (tmp_path / "plot.png").stat().st_size > 1000
