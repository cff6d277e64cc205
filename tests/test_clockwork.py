"""Clockwork RNN: module schedule, block-triangular recurrence, runner integration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import cells, scan, train
from rnn_jax.cells.clockwork import Clockwork, ClockworkState

PERIODS = (1, 2, 4, 8)
H, I, T = 8, 3, 20


def _setup(seed=0, batch=2):
  cell = cells.get("clockwork", periods=PERIODS)
  k_p, k_b, k_h, k_x = jax.random.split(jax.random.key(seed), 4)
  params = cell.init(k_p, I, H)
  params["b"] = 0.3 * jax.random.normal(k_b, (H,))
  # Dense recurrent weights (as after an update that ignored the structure): the cell must mask them itself.
  params["w_h"] = 0.5 * jax.random.normal(k_h, (H, H))
  xs_BxTxI = jax.random.normal(k_x, (batch, T, I))
  return cell, params, xs_BxTxI


def test_modules_update_exactly_on_their_steps():
  cell, params, xs = _setup()
  _, ys_BxTxH = scan.run(cell, params, xs)
  ys = np.asarray(ys_BxTxH)
  w_x, w_h, b = (np.asarray(params[k], np.float64) for k in ("w_x", "w_h", "b"))
  period_of_unit = np.repeat(PERIODS, 2)
  w_h = w_h * (period_of_unit[:, None] >= period_of_unit[None, :])  # from unit j to unit i iff T_j >= T_i
  h = np.zeros((2, H))
  for t in range(T):
    candidate = np.tanh(np.asarray(xs[:, t]) @ w_x + b + h @ w_h)
    for module, period in enumerate(PERIODS):
      units = slice(2 * module, 2 * module + 2)
      if t % period == 0:
        np.testing.assert_allclose(ys[:, t, units], candidate[:, units], atol=1e-5)
      else:  # unchanged, bit for bit
        np.testing.assert_array_equal(ys[:, t, units], ys[:, t - 1, units])
    h = ys[:, t].astype(np.float64)
  # Every module did change at its own ticks (the test above is not vacuous).
  assert np.all(np.abs(ys[:, 8, 6:] - ys[:, 7, 6:]) > 1e-4)


def test_recurrence_runs_from_slow_to_fast_only():
  cell, params, _ = _setup()
  h0 = 0.5 * jax.random.normal(jax.random.key(3), (H,))
  z = jnp.zeros((H,))
  jacobian_HxH = jax.jacobian(lambda h: cell.recur(params, ClockworkState(h, jnp.zeros((), jnp.int32)), z)[1])(h0)
  period_of_unit = np.repeat(PERIODS, 2)
  slow_from_fast = period_of_unit[:, None] > period_of_unit[None, :]  # [to, from]: target slower than source
  assert np.all(np.asarray(jacobian_HxH)[slow_from_fast] == 0)
  assert np.all(np.abs(np.asarray(jacobian_HxH)[~slow_from_fast]) > 0)
  # Masked weights get no gradient, so training cannot break the structure.
  grads = jax.grad(lambda p: jnp.sum(scan.run(cell, p, jnp.ones((1, T, I)))[1] ** 2))(params)
  mask = cell.recurrent_mask(H)
  assert np.all(np.asarray(grads["w_h"])[mask == 0] == 0)
  assert cell.num_trainable_params(I, H) == I * H + H + int(mask.sum()) == 24 + 8 + 4 * (1 + 2 + 3 + 4)


def test_step_counter_respects_lengths():
  cell, params, xs = _setup()
  lengths = jnp.array([T, 7])
  carry, ys = scan.run(cell, params, xs, lengths=lengths)
  np.testing.assert_array_equal(carry.t, [T, 7])
  _, ys_short = scan.run(cell, params, xs[1:, :7])
  np.testing.assert_allclose(carry.h[1], ys_short[0, -1], atol=1e-6)
  assert np.all(np.asarray(ys[1, 7:]) == 0)


def test_bad_options_are_rejected():
  with pytest.raises(ValueError, match="non-decreasing"):
    Clockwork(periods=(4, 1))
  with pytest.raises(ValueError, match="multiple"):
    Clockwork(periods=(1, 2, 4)).init(jax.random.key(0), 1, 8)


def _small_sweep_config():
  from experiments.clockwork.configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.data.length, config.model.periods, config.model.hidden_sizes.clockwork = 96, (1, 2, 4, 8), 24
  config.num_steps = config.eval_every = config.checkpoint_every = 300
  config.sweep.models, config.sweep.learning_rates, config.sweep.seeds = ("clockwork",), (1e-2,), (0,)
  return config


def test_clockwork_learns_a_waveform(tmp_path):
  from experiments.clockwork import waveform  # pylint: disable=g-import-not-at-top
  results = waveform.run(_small_sweep_config(), str(tmp_path))
  assert results["best"][0]["nmse"] < 0.1  # from 1.0 for the zero output
  for name in ("config.json", "results.json", "results.md", "waveforms.png"):
    assert (tmp_path / name).exists(), name
  point = tmp_path / "clockwork" / "lr0.01_seed0"
  for name in ("config.json", "metrics.jsonl", "tensorboard", "results.json", "checkpoints"):
    assert (point / name).exists(), name
  assert train.load_config(str(point)).optimizer.learning_rate == 1e-2
  assert len([m for m in train.read_metrics(str(point)) if "loss" in m]) == 300 // 50
  # A rerun finds every point finished: nothing is trained again, the point's files stay as they were.
  point_results, metrics = (point / "results.json").read_text(), (point / "metrics.jsonl").read_text()
  again = waveform.run(_small_sweep_config(), str(tmp_path))
  assert again["best"][0]["nmse"] == results["best"][0]["nmse"]
  assert (point / "results.json").read_text() == point_results and (point / "metrics.jsonl").read_text() == metrics


def test_synthetic_train_step_is_the_experiments_loss_and_optimizer():
  from experiments import clockwork as experiment  # pylint: disable=g-import-not-at-top
  from experiments.clockwork import model, waveform  # pylint: disable=g-import-not-at-top
  bench = experiment.synthetic_train_step(3, 32, "clockwork", hidden_size=16, periods=(1, 2, 4, 8))
  assert bench.tokens == 3 * 32 and bench.batch.shape == (3, 32)
  target = waveform.target_waveform(32)
  emitted = np.asarray(model.emit_waveform(cells.get("clockwork", periods=(1, 2, 4, 8)), bench.state.params, 1, 32)[0])
  expected = np.mean((emitted - target) ** 2) / np.var(target)  # the same rows: every sequence gives this NMSE
  loss, _ = bench.loss_fn(bench.state.params, None, bench.batch, None, True)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  before = jax.device_get(bench.state.params)
  state, _ = train.make_train_step(bench.loss_fn)(bench.state, bench.batch, jax.random.PRNGKey(0))
  change = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(before)))
  assert int(state.step) == 1 and change == pytest.approx(3e-3, rel=1e-3)  # Adam's first step: the learning rate
  assert float(bench.loss_fn(state.params, None, bench.batch, None, True)[0]) < float(loss)
