"""The echo-state network: a fixed random reservoir with output feedback and a closed-form linear readout.

The one place the experiment reaches the library's reservoir (`Reservoir` cell, teacher-forced states, ridge
readout, free-running generation). The signal is squashed to `tanh(x - 1)` for the network and mapped back by
`arctanh(y) + 1`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rnn_jax import cells
from rnn_jax.cells import reservoir


def squash(x):
  return jnp.tanh(x - 1.0)


def unsquash(y):
  return jnp.arctanh(jnp.clip(y, -1.0 + 1e-12, 1.0 - 1e-12)) + 1.0


def make_cell(m):
  """The reservoir of `config.model`, fed back its own (1-wide) output."""
  return cells.get("reservoir", spectral_radius=m.spectral_radius, connectivity=m.connectivity, feedback_size=1,
                   feedback_scaling=m.feedback_scaling, bias_scaling=m.bias_scaling, leak_rate=m.leak_rate)


def init(m, key: jax.Array):
  """`(cell, params)`: the reservoir's fixed random weights."""
  cell = make_cell(m)
  return cell, cell.init(key, 1, m.size)


def fit_readout(cell, params, series_1xTx1, washout: int, ridge: float):
  """`(w_Fx1, fitted_1xSx1)`: the ridge readout of the teacher-forced states after `washout`, and its
  one-step predictions of the series (in its own units)."""
  targets_1xTx1 = squash(series_1xTx1)
  _, states_1xTxN = reservoir.teacher_forced_states(cell, params, targets_1xTx1)
  w_Fx1 = reservoir.fit_readout(reservoir.features(states_1xTxN[:, washout:]), targets_1xTx1[:, washout:], ridge)
  return w_Fx1, unsquash(reservoir.readout(w_Fx1, states_1xTxN[:, washout:]))


def free_run(cell, params, w_Fx1, teacher_RxSx1, steps: int):
  """`[R, steps, 1]`: the network driven by the teacher for its S steps from a zero state, then running free."""
  carry, _ = reservoir.teacher_forced_states(cell, params, squash(teacher_RxSx1))
  _, outputs_RxSx1 = reservoir.generate(cell, params, w_Fx1, carry, squash(teacher_RxSx1[:, -1]), steps=steps)
  return unsquash(outputs_RxSx1)


nrmse = reservoir.nrmse
spectral_radius = reservoir.spectral_radius
