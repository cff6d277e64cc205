"""The networks of the clockwork experiment: a cell run on zero inputs and a linear readout.

Each network reads zeros for `length` steps and emits one value per step; it is scored by the normalised MSE
`mean((y - d)^2) / var(d)` against the target waveform `d` (1.0 for the zero output).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import cells, scan

MODELS = ("clockwork", "lstm", "elman")


def make_cell(model: str, periods=None) -> cells.Cell:
  return cells.get("clockwork", periods=tuple(periods)) if model == "clockwork" else cells.get(model)


def num_params(model: str, hidden_size: int, periods=None) -> int:
  """Trainable parameters for a 1-wide input, readout included (clockwork: unmasked weights only)."""
  readout = hidden_size + 1
  if model == "clockwork":
    return make_cell(model, periods).num_trainable_params(1, hidden_size) + readout
  params = make_cell(model).init(jax.random.key(0), 1, hidden_size)
  return sum(int(np.size(leaf)) for leaf in jax.tree.leaves(params)) + readout


def init_params(cell, hidden_size: int, key: jax.Array) -> dict:
  """The cell's params for a 1-wide input (`rnn`) and a linear readout (`w_out [H]`, `b_out []`)."""
  k_cell, k_out = jax.random.split(key)
  return {"rnn": cell.init(k_cell, 1, hidden_size),
          "w_out": jax.random.normal(k_out, (hidden_size,)) / np.sqrt(hidden_size), "b_out": jnp.zeros(())}


def emit_waveform(cell, params, batch: int, length: int) -> jax.Array:
  """`[batch, length]`: the readout of the network run on zero inputs."""
  _, ys_BxTxH = scan.run(cell, params["rnn"], jnp.zeros((batch, length, 1)))
  return ys_BxTxH @ params["w_out"] + params["b_out"]


def nmse(cell, params, target_BxT: jax.Array, variance: float) -> jax.Array:
  """`mean((y - d)^2) / var(d)` of the emitted waveform against `target_BxT` (1.0 for a zero output);
  `variance` is the target's, computed once by the caller rather than in every training step."""
  emitted_BxT = emit_waveform(cell, params, *target_BxT.shape)
  return jnp.mean(jnp.square(emitted_BxT - target_BxT)) / variance
