"""Clockwork RNN: module schedule, block-triangular recurrence, runner integration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import cells, scan
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


def test_clockwork_learns_a_waveform():
  from experiments.clockwork import waveform  # pylint: disable=g-import-not-at-top
  result = waveform.train_one("clockwork", waveform.target_waveform(96, seed=0), hidden_size=24,
                              periods=(1, 2, 4, 8), steps=300, learning_rate=1e-2, seed=0)
  assert result["nmse"] < 0.1  # from 1.0 for the zero output
