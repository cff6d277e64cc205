"""Recurrent cells as pure functions, and the registry that names them.

  cell = cells.get("lstm", peepholes=True)      # options are static fields
  params = cell.init(key, input_size, hidden_size)
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

from rnn_jax.cells.base import Cell
from rnn_jax.cells.clockwork import Clockwork
from rnn_jax.cells.elman import Elman
from rnn_jax.cells.gru import GRU
from rnn_jax.cells.lstm import LSTM, LSTMState
from rnn_jax.cells.reservoir import Reservoir
from rnn_jax.cells.lstmp import LSTMP, LSTMPState

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
  """The cell a config names: `model_config.cell` and, if present, `model_config.matmul_dtype` and (when
  non-zero) `model_config.proj_size`.

  Errors name the config field, e.g. "config.model.cell: unknown cell 'lstn'; ...".
  """
  if model_config.cell not in _REGISTRY:
    raise ValueError(f"{field}.cell: unknown cell {model_config.cell!r}; registered cells: {names()}")
  options = {}
  if "matmul_dtype" in model_config:
    options["matmul_dtype"] = model_config.matmul_dtype
  if model_config.get("proj_size"):
    options["proj_size"] = model_config.proj_size
  try:
    return get(model_config.cell, **options)
  except ValueError as e:
    raise ValueError(f"{field}: {e}") from None


@functools.lru_cache(maxsize=256)
def _init_shapes(cell: Cell, input_size: int, hidden_size: int):
  """`(tree structure, leaf shapes)` of `cell.init`'s params for these sizes (traced, not computed)."""
  init = functools.partial(cell.init, input_size=input_size, hidden_size=hidden_size)
  shapes = jax.eval_shape(init, jax.ShapeDtypeStruct((2,), jnp.uint32))
  return jax.tree.structure(shapes), tuple(tuple(leaf.shape) for leaf in jax.tree.leaves(shapes))


def _fits(cell: Cell, params) -> bool:
  """Whether `params` have the structure and shapes `cell.init` gives for their sizes."""
  try:
    sizes = cell.input_size(params), cell.hidden_size(params)
  except (KeyError, TypeError, IndexError):  # not a dict holding the weights this cell reads its sizes from
    return False
  return _init_shapes(cell, *sizes) == (jax.tree.structure(params),
                                        tuple(tuple(jnp.shape(x)) for x in jax.tree.leaves(params)))


def _fits_default(name: str, params) -> bool:
  try:
    cell = get(name)
    return cell.params_match_init and _fits(cell, params)
  except (ValueError, TypeError):  # sizes that cell cannot take, or an init that cannot be traced
    return False


class WithCell:
  """Mixin for a model (a frozen dataclass or a flax module) whose field `cell` names a registered cell or holds a
  built one, with its options in the fields `matmul_dtype` and `cell_options` (a dict) where the model has them:
  `model.pure_cell` is that cell."""

  @property
  def pure_cell(self) -> Cell:
    options = dict(getattr(self, "cell_options", None) or {})
    if getattr(self, "matmul_dtype", None) is not None:
      options["matmul_dtype"] = self.matmul_dtype
    return get(self.cell, **options)


def check_params(cell: Cell, params) -> None:
  """Raises ValueError unless `params` are of the form `cell.init` gives, naming the registered cells (default
  options) whose params they look like, e.g. a GRU's params passed to an LSTM. Checks the cells that declare
  `params_match_init`; other cells (whose params may hold more, or whose init runs on the host) check their own."""
  if not cell.params_match_init or _fits(cell, params):
    return
  alike = [name for name in names() if _fits_default(name, params)]
  hint = f"; they look like a {' / '.join(map(repr, alike))} cell's" if alike else ""
  raise ValueError(f"params do not fit cell {cell!r}{hint}: pass the params made by this cell's init")


register("elman", Elman)
register("rnn", Elman)
register("irnn", lambda **o: Elman(**{"activation": "relu", "recurrent_init": "identity", **o}))
register("lstm", LSTM)
register("lstmp", LSTMP)
register("gru", GRU)
register("clockwork", Clockwork)
register("reservoir", Reservoir)

__all__ = ["Cell", "Elman", "GRU", "LSTM", "LSTMP", "LSTMPState", "LSTMState", "Reservoir", "WithCell", "check_params",
           "from_config", "get", "names", "register"]
