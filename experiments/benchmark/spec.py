"""A point of the benchmark grid (`Spec`) and the values its fields take.

  spec = Spec(cell="lstm", mode="fwdbwd", batch=32, length=100, hidden=256)

`bench.grid` builds the grid from the command line's lists; `implementations` turns a spec
into a `timing.Timer` per implementation.
"""

from __future__ import annotations

import ast
import dataclasses
from typing import Sequence

import jax.numpy as jnp

from rnn_jax import scan

MODES = ("fwd", "fwdbwd")
DIRECTIONS = ("uni", "bi")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
HOISTS = {"auto": None, "true": True, "false": False}  # --hoist: the runner's `hoist`


@dataclasses.dataclass(frozen=True)
class Spec:
  """One point of the grid. `input_size` 0 means equal to `hidden`; `cell_options` are the
  cell's static options as `key=value` items joined by commas (see `cell_options`). A value the
  harness cannot time raises ValueError naming the field."""
  cell: str = "lstm"
  cell_options: str = ""
  mode: str = "fwdbwd"
  batch: int = 32
  length: int = 100
  hidden: int = 256
  input_size: int = 0
  layers: int = 1
  direction: str = "uni"
  dtype: str = "float32"
  unroll: int = 1
  remat: bool = False
  hoist: str = "auto"         # HOISTS: "auto" (the runner's choice), "true", "false"
  backward: str = "auto"      # the runner's `backward` (scan.BACKWARDS): "auto", "autodiff", "fused"
  time_major: bool = True

  def __post_init__(self):
    # The runner's options are None in the rows of other implementations (`bench.run_grid`).
    choices = {"mode": MODES, "direction": DIRECTIONS, "dtype": tuple(DTYPES), "hoist": tuple(HOISTS),
               "backward": scan.BACKWARDS}
    for name, allowed in choices.items():
      value = getattr(self, name)
      if value not in allowed and not (value is None and name in ("hoist", "backward")):
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    for name, least in (("batch", 1), ("length", 1), ("hidden", 1), ("layers", 1), ("unroll", 1), ("input_size", 0)):
      value = getattr(self, name)
      if value is not None and value < least:
        raise ValueError(f"{name} must be at least {least}; got {value}")

  @property
  def options(self) -> dict:
    """`cell_options` as keyword arguments for `rnn_jax.cells.get`."""
    return cell_options(self.cell_options.split(",") if self.cell_options else [])

  @property
  def inputs(self) -> int:
    return self.input_size or self.hidden

  @property
  def tokens(self) -> int:
    return self.batch * self.length


def cell_options(items: Sequence[str]) -> dict:
  """`["peepholes=True", "forget_bias=0.5"]` -> `{"peepholes": True, "forget_bias": 0.5}`: values
  are Python literals, anything else a string."""
  options = {}
  for item in items:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
      raise ValueError(f"a cell option is key=value (e.g. peepholes=True); got {item!r}")
    try:
      options[key.strip()] = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
      options[key.strip()] = value.strip()
  return options

