"""Recurrent cells as pure functions, and the registry that names them.

  cell = cells.get("lstm", peepholes=True)      # options are static fields
  params = cell.init(key, input_size, hidden_size)
"""

from __future__ import annotations

from typing import Callable

from rnn_jax.cells.base import Cell
from rnn_jax.cells.clockwork import Clockwork
from rnn_jax.cells.elman import Elman
from rnn_jax.cells.gru import GRU
from rnn_jax.cells.lstm import LSTM, LSTMState

_REGISTRY: dict[str, Callable[..., Cell]] = {}


def register(name: str, make_cell: Callable[..., Cell]) -> None:
  """Makes `get(name, **options)` return `make_cell(**options)` (usually a Cell class)."""
  _REGISTRY[name] = make_cell


def names() -> list[str]:
  return sorted(_REGISTRY)


def get(name: str | Cell, **options) -> Cell:
  """The cell registered as `name`, built with `options` (a Cell passes through)."""
  if isinstance(name, Cell):
    if options:
      raise ValueError(f"options {sorted(options)} given with an already-built cell {name!r}")
    return name
  if name not in _REGISTRY:
    raise ValueError(f"unknown cell {name!r}; registered cells: {names()}")
  try:
    return _REGISTRY[name](**options)
  except TypeError as e:
    raise ValueError(f"bad options for cell {name!r}: {e}") from None


def from_config(model_config, field: str = "config.model") -> Cell:
  """The cell a config names: `model_config.cell` and, if present, `model_config.matmul_dtype`.

  Errors name the config field, e.g. "config.model.cell: unknown cell 'lstn'; ...".
  """
  if model_config.cell not in _REGISTRY:
    raise ValueError(f"{field}.cell: unknown cell {model_config.cell!r}; registered cells: {names()}")
  options = {}
  if "matmul_dtype" in model_config:
    options["matmul_dtype"] = model_config.matmul_dtype
  try:
    return get(model_config.cell, **options)
  except ValueError as e:
    raise ValueError(f"{field}: {e}") from None


register("elman", Elman)
register("rnn", Elman)
register("irnn", lambda **o: Elman(**{"activation": "relu", "recurrent_init": "identity", **o}))
register("lstm", LSTM)
register("gru", GRU)
register("clockwork", Clockwork)

__all__ = ["Cell", "Elman", "GRU", "LSTM", "LSTMState", "from_config", "get", "names", "register"]
