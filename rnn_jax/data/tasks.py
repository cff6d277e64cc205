"""Synthetic long-range dependency tasks (the vanishing-gradient benchmarks).

All generators are pure functions of a JAX key, so a batch is reproducible from a seed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Predicting the mean 1.0 of the sum of two U(0, 1) numbers gives MSE Var(u1 + u2) = 2/12.
ADDING_BASELINE_MSE = 1.0 / 6.0


def adding_problem(key: jax.Array, batch_size: int, length: int):
  """Adding problem (Hochreiter & Schmidhuber 1997, as in Le et al. 2015).

  Returns `(x_BxTx2, y_B)`: channel 0 holds U(0, 1) values, channel 1 marks two
  positions, one in each half of the sequence; the target is the sum of the two
  marked values. Always predicting 1.0 scores `ADDING_BASELINE_MSE` (1/6).
  """
  k_values, k_first, k_second = jax.random.split(key, 3)
  values_BxT = jax.random.uniform(k_values, (batch_size, length))
  half = length // 2
  first_B = jax.random.randint(k_first, (batch_size,), 0, half)
  second_B = jax.random.randint(k_second, (batch_size,), half, length)
  positions_BxT = jnp.arange(length)[None, :]
  marks_BxT = ((positions_BxT == first_B[:, None]) | (positions_BxT == second_B[:, None])).astype(jnp.float32)
  x_BxTx2 = jnp.stack([values_BxT, marks_BxT], axis=-1)
  y_B = jnp.sum(values_BxT * marks_BxT, axis=1)
  return x_BxTx2, y_B
