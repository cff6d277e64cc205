"""Echo-state network and Mackey-Glass: against numpy re-implementations and known properties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import train
from rnn_jax.cells import reservoir
from rnn_jax.data import mackey_glass as mg
from tests.conftest import float64


@pytest.mark.parametrize("size,connectivity,radius", [(100, 0.05, 0.9), (300, 0.01, 1.25), (50, 0.2, 0.5)])
def test_spectral_radius_is_what_was_asked(size, connectivity, radius):
  cell = reservoir.Reservoir(spectral_radius=radius, connectivity=connectivity)
  params = cell.init(jax.random.key(size), 3, size)
  w = np.asarray(params["w_h"], np.float64)
  assert np.max(np.abs(np.linalg.eigvals(w))) == pytest.approx(radius, rel=1e-4)
  density = np.mean(w != 0)
  assert abs(density - connectivity) < 4 * np.sqrt(connectivity / size**2) + 1e-3


def _numpy_states(params, xs_TxX, leak):
  """Reference reservoir loop in float64 numpy."""
  w_x, w_h, b = (np.asarray(params[k], np.float64) for k in ("w_x", "w_h", "b"))
  h, states = np.zeros(w_h.shape[0]), []
  for x in xs_TxX:
    h = (1 - leak) * h + leak * np.tanh(x @ w_x + b + h @ w_h)
    states.append(h)
  return np.stack(states)


def _numpy_ridge(x_SxF, y_SxO, ridge):
  """Ridge as least squares on the augmented system [X; sqrt(r) I] w = [Y; 0]."""
  features = x_SxF.shape[1]
  a = np.concatenate([x_SxF, np.sqrt(ridge) * np.eye(features)])
  rhs = np.concatenate([y_SxO, np.zeros((features, y_SxO.shape[1]))])
  return np.linalg.lstsq(a, rhs, rcond=None)[0]


def test_teacher_forced_readout_equals_closed_form_ridge():
  with float64():
    steps, washout, ridge, leak = 120, 20, 1e-3, 0.7
    cell = reservoir.Reservoir(spectral_radius=0.9, connectivity=0.1, input_scaling=0.5, feedback_size=2,
                               feedback_scaling=0.3, bias_scaling=0.2, leak_rate=leak)
    k_p, k_u, k_d = jax.random.split(jax.random.key(0), 3)
    params = cell.init(k_p, 1 + 2, 40)
    u_1xTx1 = jax.random.normal(k_u, (1, steps, 1))
    d_1xTx2 = jnp.sin(jnp.cumsum(jax.random.uniform(k_d, (1, steps, 2)), axis=1))
    _, states_1xTxN = reservoir.teacher_forced_states(cell, params, d_1xTx2, u_1xTx1)
    w = reservoir.fit_readout(reservoir.features(states_1xTxN, u_1xTx1)[:, washout:], d_1xTx2[:, washout:], ridge)

    u, d = np.asarray(u_1xTx1[0]), np.asarray(d_1xTx2[0])
    fed_back = np.concatenate([np.zeros((1, 2)), d[:-1]])
    states = _numpy_states(params, np.concatenate([u, fed_back], axis=1), leak)
    np.testing.assert_allclose(states_1xTxN[0], states, atol=1e-12)
    regressors = np.concatenate([np.ones((steps, 1)), u, states], axis=1)[washout:]
    np.testing.assert_allclose(w, _numpy_ridge(regressors, d[washout:], ridge), rtol=1e-7, atol=1e-9)
    assert w.dtype == jnp.float64


@pytest.mark.parametrize("num_inputs", [0, 2])
def test_free_running_generation_feeds_back_its_own_output(num_inputs):
  with float64():
    cell = reservoir.Reservoir(spectral_radius=0.8, connectivity=0.2, feedback_size=1, bias_scaling=0.1)
    k_p, k_w, k_h, k_u = jax.random.split(jax.random.key(1), 4)
    params = cell.init(k_p, num_inputs + 1, 30)
    w_Fx1 = 0.1 * jax.random.normal(k_w, (1 + num_inputs + 30, 1))
    h0_2xN = 0.1 * jax.random.normal(k_h, (2, 30))
    y0_2x1 = jnp.array([[0.3], [-0.2]])
    u_2xSxI = jax.random.normal(k_u, (2, 15, num_inputs))
    _, ys_2xSx1 = reservoir.generate(cell, params, w_Fx1, h0_2xN, y0_2x1,
                                     inputs_BxSxI=u_2xSxI if num_inputs else None, steps=15)

    w_x, w_h, b, w = (np.asarray(a) for a in (params["w_x"], params["w_h"], params["b"], w_Fx1))
    for row in range(2):
      h, y, outputs = np.asarray(h0_2xN[row]), np.asarray(y0_2x1[row]), []
      for t in range(15):
        u = np.asarray(u_2xSxI[row, t])
        h = np.tanh(np.concatenate([u, y]) @ w_x + b + h @ w_h)
        y = np.concatenate([[1.0], u, h]) @ w
        outputs.append(y)
      np.testing.assert_allclose(ys_2xSx1[row], np.stack(outputs), atol=1e-12)
    if num_inputs:
      with pytest.raises(ValueError, match="steps=50 and inputs for 15 steps"):
        reservoir.generate(cell, params, w_Fx1, h0_2xN, y0_2x1, inputs_BxSxI=u_2xSxI, steps=50)


def test_reservoir_without_feedback_is_driven_by_its_inputs():
  with float64():
    cell = reservoir.Reservoir(spectral_radius=0.9, connectivity=0.1, input_scaling=0.7, leak_rate=0.3)
    params = cell.init(jax.random.key(2), 2, 25)
    u_1xTx2 = jax.random.normal(jax.random.key(3), (1, 40, 2))
    _, states_1xTxN = reservoir.driven_states(cell, params, u_1xTx2)
    np.testing.assert_allclose(states_1xTxN[0], _numpy_states(params, np.asarray(u_1xTx2[0]), 0.3), atol=1e-12)
    with pytest.raises(ValueError, match="feedback"):
      reservoir.driven_states(reservoir.Reservoir(feedback_size=1), params, u_1xTx2)


def test_mackey_glass_stays_on_its_attractor():
  with float64():
    xs = np.asarray(mg.mackey_glass(jax.random.key(0), 2000, batch_shape=(4,)))
  # The tau = 17 attractor spans about [0.42, 1.32]; the series keeps oscillating (chaos, no fixed point).
  assert 0.35 < xs.min() and xs.max() < 1.4
  assert 0.2 < xs.std() < 0.25 and 0.88 < xs.mean() < 0.97
  assert np.all(xs[:, -500:].std(axis=1) > 0.15)
  assert not np.allclose(xs[0], xs[1], atol=0.1)  # independent trajectories


def test_mackey_glass_short_delay_settles_on_the_fixed_point():
  with float64():
    xs = np.asarray(mg.mackey_glass(jax.random.key(0), 50, batch_shape=(3,), tau=3.0))
  np.testing.assert_allclose(xs, (0.2 / 0.1 - 1.0) ** (1 / 10), atol=1e-6)


def test_mackey_glass_integration_converges_in_dt():
  """The same constant history integrated at dt and dt/2 agrees to RK4-with-interpolation accuracy."""
  with float64():
    coarse = mg._integrate(jnp.full((171,), 1.2), 60, 0.2, 0.1, 10, 0.1, 10)
    fine = mg._integrate(jnp.full((341,), 1.2), 60, 0.2, 0.1, 10, 0.05, 20)
    assert float(jnp.max(jnp.abs(coarse - fine))) < 1e-4
    assert float(jnp.max(jnp.abs(coarse - 1.2))) > 0.1


def test_small_esn_predicts_mackey_glass(tmp_path):
  from experiments.reservoir import esn  # pylint: disable=g-import-not-at-top
  from experiments.reservoir.configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.model.size, config.model.ridge = 300, 1e-8
  config.data.fit_length, config.data.washout = 800, 200
  config.eval.sync, config.eval.test_runs, config.eval.plot_steps = 200, 10, 84
  results = esn.run(config, str(tmp_path))
  assert results["measured_spectral_radius"] == pytest.approx(0.95, rel=1e-6)
  assert results["nrmse84"] < 0.05  # 7e-3 measured; the 1000-unit default reaches 6e-5
  for name in ("config.json", "metrics.jsonl", "tensorboard", "results.json", "mackey_glass.png"):
    assert (tmp_path / name).exists(), name
  assert train.load_config(str(tmp_path)).model.size == 300
  assert train.read_metrics(str(tmp_path))[0]["nrmse84"] == results["nrmse84"]
