"""Synthetic long-range dependency tasks (the vanishing-gradient benchmarks).

All generators are pure functions of a JAX key, so a batch is reproducible from a seed.
"""

from __future__ import annotations

import math

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


def copy_baseline_cross_entropy(length: int, num_symbols: int = 8, copy_length: int = 10) -> float:
  """Cross-entropy per step (nats) of the memoryless strategy on `copy_task`.

  Predicting blank for the first `length + copy_length` steps and a uniform guess over
  the `num_symbols` symbols for the last `copy_length` gives
  `copy_length * log(num_symbols) / (length + 2 * copy_length)` (10 log 8 / (T + 20)).
  """
  return copy_length * math.log(num_symbols) / (length + 2 * copy_length)


def copy_task(key: jax.Array, batch_size: int, length: int, num_symbols: int = 8, copy_length: int = 10):
  """Copy memory task (Hochreiter & Schmidhuber 1997, as in Arjovsky et al. 2016).

  Token 0 is the blank, `1..num_symbols` the symbols and `num_symbols + 1` the delimiter
  (vocabulary `num_symbols + 2`). The input is `copy_length` random symbols, `length - 1`
  blanks, the delimiter and `copy_length` blanks; the target is `length + copy_length`
  blanks followed by the symbols. Returns `(x_BxL, y_BxL)` int32 with `L = length + 2 *
  copy_length`; `copy_baseline_cross_entropy(length)` is the memoryless score.
  """
  symbols_BxC = jax.random.randint(key, (batch_size, copy_length), 1, num_symbols + 1)
  blanks = lambda n: jnp.zeros((batch_size, n), jnp.int32)
  delimiter_Bx1 = jnp.full((batch_size, 1), num_symbols + 1, jnp.int32)
  x_BxL = jnp.concatenate([symbols_BxC, blanks(length - 1), delimiter_Bx1, blanks(copy_length)], axis=1)
  y_BxL = jnp.concatenate([blanks(length + copy_length), symbols_BxC], axis=1)
  return x_BxL, y_BxL
