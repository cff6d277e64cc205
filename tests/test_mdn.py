"""Mixture density outputs and the Graves window against direct numpy computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import mdn

M = 4


def _numpy_nll(y, point):
  """-log p(point) from the raw outputs, written from the formulas of Graves (2013), eqs. 18-26."""
  e_hat, pi_hat = y[0], y[1:1 + M]
  mu_x, mu_y, s_x, s_y, r = (y[1 + k * M:1 + (k + 1) * M] for k in range(1, 6))
  pi = np.exp(pi_hat) / np.exp(pi_hat).sum()
  sx, sy, rho = np.exp(s_x), np.exp(s_y), np.tanh(r)
  dx, dy = (point[0] - mu_x) / sx, (point[1] - mu_y) / sy
  z = dx ** 2 + dy ** 2 - 2 * rho * dx * dy
  density = np.exp(-z / (2 * (1 - rho ** 2))) / (2 * np.pi * sx * sy * np.sqrt(1 - rho ** 2))
  e = 1 / (1 + np.exp(-e_hat))
  return -np.log((pi * density).sum()) - np.log(e if point[2] == 1 else 1 - e)


def test_nll_equals_direct_numpy(maybe_jit):
  rng = np.random.default_rng(0)
  y = rng.normal(size=(5, 7, mdn.num_outputs(M))).astype(np.float64)
  points = np.concatenate([rng.normal(size=(5, 7, 2)), rng.integers(0, 2, (5, 7, 1))], axis=-1)
  got = maybe_jit(lambda y, p: mdn.nll(mdn.split(y, M), p))(y.astype(np.float32), points.astype(np.float32))
  expected = np.array([[_numpy_nll(y[b, t], points[b, t]) for t in range(7)] for b in range(5)])
  np.testing.assert_allclose(np.asarray(got), expected, rtol=2e-5, atol=2e-5)


def test_density_integrates_to_one():
  rng = np.random.default_rng(1)
  grid = np.linspace(-12, 12, 601)
  xx, yy = np.meshgrid(grid, grid, indexing="ij")
  y = rng.normal(size=(mdn.num_outputs(M),)) * 0.5
  mixture = mdn.split(jnp.broadcast_to(jnp.asarray(y, jnp.float32), xx.shape + y.shape), M)
  density = np.exp(np.asarray(mdn.log_density(mixture, jnp.stack([xx, yy], -1).astype(np.float32))))
  np.testing.assert_allclose(density.sum() * (grid[1] - grid[0]) ** 2, 1.0, atol=2e-3)


def test_nll_finite_at_extreme_correlation():
  y = np.zeros((mdn.num_outputs(1),), np.float32)
  y[-1] = 40.0   # tanh(40) == 1 in float32
  value = mdn.nll(mdn.split(jnp.asarray(y), 1), jnp.array([0.0, 0.0, 0.0]))
  assert np.isfinite(float(value))


def test_high_bias_sampling_approaches_component_mean():
  rng = np.random.default_rng(2)
  y = rng.normal(size=(64, mdn.num_outputs(M)))
  y[np.arange(64), 1 + rng.integers(0, M, 64)] = y[:, 1:1 + M].max(-1) + 1.0   # a clear most likely component
  y = jnp.asarray(y, jnp.float32)
  sharp = mdn.split(y, M, bias=30.0)
  draws = mdn.sample(jax.random.PRNGKey(0), sharp)
  top = np.argmax(np.asarray(y[:, 1:1 + M]), axis=-1)
  mode = np.take_along_axis(np.asarray(mdn.split(y, M).mu), top[:, None, None], axis=1)[:, 0]
  np.testing.assert_allclose(np.asarray(draws[:, :2]), mode, atol=1e-6)
  # Without bias the draws scatter around that mean.
  loose = mdn.sample(jax.random.PRNGKey(0), mdn.split(y, M))
  assert np.abs(np.asarray(loose[:, :2]) - mode).mean() > 0.1


def test_bias_zero_samples_match_mixture_moments():
  rng = np.random.default_rng(3)
  y = jnp.asarray(np.tile(rng.normal(size=(1, mdn.num_outputs(M))), (20000, 1)), jnp.float32)
  mixture = mdn.split(y, M)
  draws = np.asarray(mdn.sample(jax.random.PRNGKey(1), mixture))
  np.testing.assert_allclose(draws[:, :2].mean(0), np.asarray(mdn.mean(mixture))[0], atol=0.05)
  np.testing.assert_allclose(draws[:, 2].mean(), float(jax.nn.sigmoid(mixture.eos_logit[0])), atol=0.015)


def test_split_rejects_wrong_size():
  with pytest.raises(ValueError, match="6\\*4\\+1"):
    mdn.split(jnp.zeros((3, 24)), 4)


def test_window_matches_formula_and_moves_forward():
  rng = np.random.default_rng(4)
  out = rng.normal(size=(2, 9)).astype(np.float32)   # K = 3
  kappa_prev = np.abs(rng.normal(size=(2, 3))).astype(np.float32)
  text = np.eye(5, dtype=np.float32)[rng.integers(0, 5, (2, 6))]   # U = 6, C = 5
  w, phi, kappa = mdn.window(jnp.asarray(out), jnp.asarray(kappa_prev), jnp.asarray(text))
  alpha, beta, k_inc = np.exp(out[:, :3]), np.exp(out[:, 3:6]), np.exp(out[:, 6:])
  expected_kappa = kappa_prev + k_inc
  expected_phi = np.array([[np.sum(alpha[b] * np.exp(-beta[b] * (expected_kappa[b] - u) ** 2)) for u in range(6)]
                           for b in range(2)])
  np.testing.assert_allclose(np.asarray(kappa), expected_kappa, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(phi), expected_phi, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(w), np.einsum("bu,buc->bc", expected_phi, text), rtol=1e-5)
  assert np.all(np.asarray(kappa) > kappa_prev)
