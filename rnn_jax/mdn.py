"""Mixture density outputs for pen offsets and the soft attention window (Graves 2013, section 4-5).

A point is `(dx, dy, pen_up)`. The network emits `6M + 1` numbers per step, read as
M bivariate Gaussians over `(dx, dy)` (weights, means, std devs, correlations) and a
Bernoulli end-of-stroke probability:

  mixture = split(y_BxTxP, num_mixtures=M, bias=0.0)
  nll_BxT = nll(mixture, points_BxTx3)                   # exact -log p(point), nats
  point_Bx3 = sample(key, split(y_BxP, M, bias=b))      # one draw per batch row

Layout of the `6M + 1` outputs: `[eos, pi (M), mu_x (M), mu_y (M), sigma_x (M),
sigma_y (M), rho (M)]`, activated as pi = softmax, sigma = exp, rho = tanh and
p(pen_up) = sigmoid(eos) (Graves writes `1 / (1 + exp(e))`, the same up to the sign of e).
Graves' sampling bias b sharpens the mixture: `pi = softmax(pi_hat (1 + b))`,
`sigma = exp(sigma_hat - b)`; b = 0 is the trained model, large b writes neater.

The window (eqs. 46-51) lets a recurrent layer read a character sequence `c_1..c_U`:

  alpha, beta, kappa = window_parameters(window_out_Bx3K, kappa_prev_BxK)
  phi_BxU = window_weights(alpha, beta, kappa, num_positions=U)
  w_BxC = phi_BxU @ text_BxUxC
with `phi(u) = sum_k alpha_k exp(-beta_k (kappa_k - u)^2)` and `kappa = kappa_prev +
exp(kappa_hat)`, so the window only moves forward. Characters sit at u = 0, 1, ..., U-1.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

_LOG_2PI = 1.8378770664093453


class Mixture(NamedTuple):
  """Activated MDN parameters; `...` is any batch shape (e.g. `B, T`)."""
  log_pi: jax.Array       # [..., M] log mixture weights
  mu: jax.Array           # [..., M, 2] means of (dx, dy)
  log_sigma: jax.Array    # [..., M, 2] log standard deviations
  rho_hat: jax.Array      # [..., M] correlation before tanh (kept for a stable log(1 - rho^2))
  eos_logit: jax.Array    # [...] logit of p(pen_up = 1)

  @property
  def rho(self):
    return jnp.tanh(self.rho_hat)


def num_outputs(num_mixtures: int) -> int:
  return 6 * num_mixtures + 1


def split(y_xP: jax.Array, num_mixtures: int, bias: float | jax.Array = 0.0) -> Mixture:
  """Reads `[..., 6M + 1]` raw outputs as a `Mixture`, sharpened by Graves' bias `b`."""
  if y_xP.shape[-1] != num_outputs(num_mixtures):
    raise ValueError(f"expected {num_outputs(num_mixtures)} = 6*{num_mixtures}+1 outputs on the last axis, "
                     f"got shape {tuple(y_xP.shape)}")
  m = num_mixtures
  eos, pi_hat, mu_x, mu_y, s_x, s_y, rho_hat = jnp.split(y_xP, [1, 1 + m, 1 + 2 * m, 1 + 3 * m, 1 + 4 * m,
                                                                  1 + 5 * m], axis=-1)
  return Mixture(log_pi=jax.nn.log_softmax(pi_hat * (1.0 + bias), axis=-1),
                 mu=jnp.stack([mu_x, mu_y], axis=-1),
                 log_sigma=jnp.stack([s_x, s_y], axis=-1) - bias,
                 rho_hat=rho_hat, eos_logit=eos[..., 0])


def _log1m_tanh2(a):
  """log(1 - tanh(a)^2) = 2 log sech(a), exact for large |a|."""
  a = jnp.abs(a)
  return 2.0 * (jnp.log(2.0) - a - jnp.log1p(jnp.exp(-2.0 * a)))


def component_log_density(mixture: Mixture, xy_x2: jax.Array) -> jax.Array:
  """`[..., M]` log N(xy | mu_j, sigma_j, rho_j) of each bivariate Gaussian."""
  z_xMx2 = (xy_x2[..., None, :] - mixture.mu) * jnp.exp(-mixture.log_sigma)
  rho = mixture.rho
  log1m_rho2 = _log1m_tanh2(mixture.rho_hat)
  quad = (jnp.sum(jnp.square(z_xMx2), axis=-1) - 2.0 * rho * z_xMx2[..., 0] * z_xMx2[..., 1]) * jnp.exp(-log1m_rho2)
  return -_LOG_2PI - jnp.sum(mixture.log_sigma, axis=-1) - 0.5 * log1m_rho2 - 0.5 * quad


def log_density(mixture: Mixture, xy_x2: jax.Array) -> jax.Array:
  """`[...]` log of the mixture density at the offsets."""
  return jax.nn.logsumexp(mixture.log_pi + component_log_density(mixture, xy_x2), axis=-1)


def nll(mixture: Mixture, points_x3: jax.Array) -> jax.Array:
  """`[...]` exact negative log-likelihood of `(dx, dy, pen_up)` points: mixture density and Bernoulli."""
  pen_up = points_x3[..., 2]
  log_bernoulli = pen_up * jax.nn.log_sigmoid(mixture.eos_logit) + (1.0 - pen_up) * jax.nn.log_sigmoid(
      -mixture.eos_logit)
  return -(log_density(mixture, points_x3[..., :2]) + log_bernoulli)


def mean(mixture: Mixture) -> jax.Array:
  """`[..., 2]` the mixture mean `sum_j pi_j mu_j`."""
  return jnp.sum(jnp.exp(mixture.log_pi)[..., None] * mixture.mu, axis=-2)


def sample(key: jax.Array, mixture: Mixture) -> jax.Array:
  """One `(dx, dy, pen_up)` draw per batch position: `[..., 3]`."""
  k_comp, k_normal, k_eos = jax.random.split(key, 3)
  comp = jax.random.categorical(k_comp, mixture.log_pi, axis=-1)
  take = lambda a: jnp.take_along_axis(a, comp[..., None], axis=-1)[..., 0]
  mu = jnp.stack([take(mixture.mu[..., 0]), take(mixture.mu[..., 1])], axis=-1)
  sigma = jnp.exp(jnp.stack([take(mixture.log_sigma[..., 0]), take(mixture.log_sigma[..., 1])], axis=-1))
  rho = take(mixture.rho)
  z1, z2 = jnp.moveaxis(jax.random.normal(k_normal, comp.shape + (2,)), -1, 0)
  dx = mu[..., 0] + sigma[..., 0] * z1
  dy = mu[..., 1] + sigma[..., 1] * (rho * z1 + jnp.sqrt(1.0 - jnp.square(rho)) * z2)
  pen_up = jax.random.bernoulli(k_eos, jax.nn.sigmoid(mixture.eos_logit)).astype(dx.dtype)
  return jnp.stack([dx, dy, pen_up], axis=-1)


def window_parameters(window_out_Bx3K: jax.Array, kappa_prev_BxK: jax.Array):
  """`(alpha, beta, kappa)`, each `[B, K]`, from the layer's `[B, 3K]` window outputs (eqs. 48-51)."""
  alpha_hat, beta_hat, kappa_hat = jnp.split(window_out_Bx3K, 3, axis=-1)
  return jnp.exp(alpha_hat), jnp.exp(beta_hat), kappa_prev_BxK + jnp.exp(kappa_hat)


def window_weights(alpha_BxK: jax.Array, beta_BxK: jax.Array, kappa_BxK: jax.Array, num_positions: int) -> jax.Array:
  """`[B, U]` soft window `phi(u) = sum_k alpha_k exp(-beta_k (kappa_k - u)^2)` at u = 0..U-1 (eq. 46)."""
  u_1x1xU = jnp.arange(num_positions, dtype=kappa_BxK.dtype)[None, None, :]
  dist_BxKxU = jnp.square(kappa_BxK[..., None] - u_1x1xU)
  return jnp.sum(alpha_BxK[..., None] * jnp.exp(-beta_BxK[..., None] * dist_BxKxU), axis=1)


def window(window_out_Bx3K: jax.Array, kappa_prev_BxK: jax.Array, text_BxUxC: jax.Array):
  """One window step: `(w_BxC, phi_BxU, kappa_BxK)`; `w` is the phi-weighted sum of the one-hot characters."""
  alpha, beta, kappa = window_parameters(window_out_Bx3K, kappa_prev_BxK)
  phi_BxU = window_weights(alpha, beta, kappa, text_BxUxC.shape[1])
  w_BxC = jnp.einsum("bu,buc->bc", phi_BxU, text_BxUxC)
  return w_BxC, phi_BxU, kappa
