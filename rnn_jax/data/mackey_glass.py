"""Mackey-Glass chaotic time series (Mackey & Glass 1977), the echo-state benchmark.

  dx/dt = beta * x(t - tau) / (1 + x(t - tau)^n) - gamma * x(t)

integrated by fourth-order Runge-Kutta with step `dt`; the delayed value at a half
step is the mean of its two neighbouring history samples. One output sample is
kept every `subsample` integration steps (with the defaults, one per time unit).
With tau = 17 the system is chaotic and its attractor lies within about [0.2, 1.4];
with tau below about 4.5 every trajectory settles on the fixed point
x* = (beta / gamma - 1)^(1 / n) (= 1 with the defaults).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp


def _derivative(x, x_tau, beta, gamma, n):
  return beta * x_tau / (1.0 + x_tau ** n) - gamma * x


def mackey_glass(key: jax.Array, length: int, *, batch_shape: Sequence[int] = (), tau: float = 17.0,
                 beta: float = 0.2, gamma: float = 0.1, n: int = 10, dt: float = 0.1,
                 subsample: int = 10, transient: int = 1000):
  """Samples `[*batch_shape, length]` of independent Mackey-Glass trajectories.

  Each trajectory starts from its own random history, x(t) ~ U(0.5, 1.5) for
  t in [-tau, 0] (one value per history point), and its first `transient` output
  samples are dropped so that what is returned lies on the attractor.
  Floats are the default float type (float64 under `jax.enable_x64(True)`).
  """
  delay_steps = round(tau / dt)
  if abs(delay_steps * dt - tau) > 1e-9 * tau or delay_steps < 1:
    raise ValueError(f"tau / dt must be a positive integer, got tau={tau}, dt={dt}")
  history_xD = jax.random.uniform(key, (*batch_shape, delay_steps + 1), minval=0.5, maxval=1.5)
  return _integrate(history_xD, length + transient, beta, gamma, n, dt, subsample)[..., transient:]


@jax.jit(static_argnums=(1, 2, 3, 4, 5, 6))
def _integrate(history_xD, samples, beta, gamma, n, dt, subsample):
  """`history_xD[..., k]` = x(t0 - tau + k dt); returns `[..., samples]` every `subsample` steps."""
  f = lambda x, x_tau: _derivative(x, x_tau, beta, gamma, n)

  def rk4_step(window_xD, _):
    x, x_tau, x_tau_next = window_xD[..., -1], window_xD[..., 0], window_xD[..., 1]
    x_tau_half = 0.5 * (x_tau + x_tau_next)
    k1 = f(x, x_tau)
    k2 = f(x + 0.5 * dt * k1, x_tau_half)
    k3 = f(x + 0.5 * dt * k2, x_tau_half)
    k4 = f(x + dt * k3, x_tau_next)
    x_new = x + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return jnp.concatenate([window_xD[..., 1:], x_new[..., None]], axis=-1), None

  def sample(window_xD, _):
    window_xD, _ = jax.lax.scan(rk4_step, window_xD, None, length=subsample)
    return window_xD, window_xD[..., -1]

  _, xs_Sx = jax.lax.scan(sample, history_xD, None, length=samples)
  return jnp.moveaxis(xs_Sx, 0, -1)
