"""Long-range benchmarks: copy-task generator, the memoryless baselines, and that a gated cell learns."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.data import tasks


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


def test_gru_learns_short_copy_task():
  from experiments.long_range import benchmark  # pylint: disable=g-import-not-at-top
  result = benchmark.train_one("copy", 5, benchmark.VARIANTS["gru_clip"], steps=800, eval_size=500)
  assert result["error"] < 0.75 * result["baseline"]  # 0.49 vs 0.83 measured
  assert result["copy_accuracy"] > 0.3  # chance is 1/8


def test_table_and_plot_are_written(tmp_path):
  from experiments.long_range import benchmark  # pylint: disable=g-import-not-at-top
  results = {f"{task}/{variant}/{t}": {"task": task, "variant": variant, "length": t, "error": e,
                                       **({"copy_accuracy": 0.5} if task == "copy" else {})}
             for task, variant, t, e in [("adding", "lstm", 50, 0.01), ("adding", "lstm", 100, None),
                                         ("copy", "gru_clip", 50, 0.2)]}
  benchmark.write_table(results, tmp_path / "results.md")
  benchmark.plot(results, str(tmp_path / "plot.png"))
  table = (tmp_path / "results.md").read_text()
  assert "| adding | lstm | 0.0100 | diverged |" in table and "0.2000 (50 %)" in table
  assert (tmp_path / "plot.png").stat().st_size > 1000
