"""Stacked cells stepped one time step at a time (haiku's `DeepRNN`), for decoders and samplers that feed
each step's output back in; `rnn_jax.scan.run_stack` runs a stack layer by layer over whole sequences.

  carries, ys = stack.step_stack(cell, layers, carries, x_BxI)           # ys[-1]: the top layer's y_BxH
  carries, ys = stack.step_stack(cell, layers, carries, h_BxH, before=[x_BxI])   # skip connections
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from rnn_jax.cells.base import Cell


def step_stack(cell: Cell, layers: Sequence, carries: Sequence, x_BxI: jax.Array, *, before: Sequence = (),
               after: Sequence = ()):
  """One time step up a stack of `cell` layers (one params entry and one carry per layer): the first layer reads
  `x_BxI`, each later one the output of the layer below, with the `[B, *]` arrays `before` and `after`
  concatenated on either side. Returns `(new carries, a list; the outputs y_BxH of every layer, a list)`."""
  new_carries, ys, below_BxI = [], [], x_BxI
  for params, carry in zip(layers, carries):
    inputs_BxI = jnp.concatenate([*before, below_BxI, *after], axis=-1) if (before or after) else below_BxI
    carry, below_BxI = cell.step(params, carry, inputs_BxI)
    new_carries.append(carry)
    ys.append(below_BxI)
  return new_carries, ys
