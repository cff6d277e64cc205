"""Thin flax.linen wrappers over the pure cells and the runner.

The params a module creates are exactly what the pure functions take:
`variables["params"]["layers"]` is the list `scan.init_stack` returns, so
`scan.run_stack(cell, variables["params"]["layers"], xs)` gives the same outputs as
`RNN(...).apply(variables, xs)`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn

from rnn_jax import cells, scan


class RNN(cells.WithCell, nn.Module):
  """A (stacked, optionally bidirectional) recurrent network over `[B, T, I]` inputs.

  Attributes:
    cell: a registered cell name (or a built Cell).
    hidden_size: units per layer and direction.
    num_layers: depth of the stack.
    bidirectional, merge, residual: as in `scan.run_stack`.
    dropout_rate, variational_dropout: dropout between layers; active when
      `deterministic=False`, drawing from the "dropout" RNG stream.
    cell_options: static options of the cell (e.g. `{"peepholes": True}`).
    runner_options: `unroll`, `remat`, `hoist` (see `rnn_jax.scan`).
  Returns from `__call__`: `(final_carries, ys_BxTxH)`; carries as in `run_stack`.
  """

  cell: Any = "lstm"
  hidden_size: int = 128
  num_layers: int = 1
  bidirectional: bool = False
  merge: str = "concat"
  residual: bool = False
  dropout_rate: float = 0.0
  variational_dropout: bool = False
  cell_options: Any = None
  runner_options: Any = None

  @nn.compact
  def __call__(self, xs_BxTxI, *, lengths=None, initial_carries=None, deterministic: bool = True):
    cell = self.pure_cell
    layers = self.param("layers", lambda key: scan.init_stack(
        key, cell, xs_BxTxI.shape[-1], self.hidden_size, self.num_layers, self.bidirectional, self.merge))
    use_dropout = self.dropout_rate > 0.0 and not deterministic
    return scan.run_stack(
        cell, layers, xs_BxTxI, initial_carries=initial_carries, lengths=lengths,
        bidirectional=self.bidirectional, merge=self.merge, residual=self.residual,
        dropout_rate=self.dropout_rate if use_dropout else 0.0,
        dropout_rng=self.make_rng("dropout") if use_dropout else None,
        variational_dropout=self.variational_dropout, **dict(self.runner_options or {}))

  def initial_carries(self, variables, batch_shape):
    """Zero carries for `__call__`, given the module's variables."""
    return scan.initial_stack_carry(self.pure_cell, variables["params"]["layers"], batch_shape)


__all__ = ["RNN"]
