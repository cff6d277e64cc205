"""The cell protocol shared by every recurrent family (the shared array ops live in `rnn_jax.ops`,
initialisers and layer norm in `rnn_jax.layers`).

A cell is a frozen (hashable) dataclass whose fields are static options
(activation, peepholes, ...). Its methods are pure functions of plain pytrees:

  params = cell.init(key, input_size, hidden_size)
  carry  = cell.initial_carry(params, batch_shape)
  carry, y_BxH = cell.step(params, carry, x_BxI)

`step` is split in two so the runner can hoist the input projection out of the
time loop: `step(p, c, x) == recur(p, c, project(p, x))`. `project` is linear in
`x` (plus bias, and for layer-normalised cells a normalisation that acts on the
last axis only), so it may be applied to a whole `[T, B, I]` block at once.

Mixed precision: every cell takes `matmul_dtype` (e.g. "bfloat16"). Its matmuls then
read both operands in that dtype and accumulate in, and return, the params' dtype
(float32), while carries and gate math stay in the params' dtype:

  cell = cells.get("lstm", matmul_dtype="bfloat16")   # params, carries: float32
"""

from __future__ import annotations

import abc
import dataclasses
import numbers
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import ops

Params = Any
Carry = Any


# A scalar option's annotation (a string under `from __future__ import annotations`, else the type, named here
# by its __name__) -> (accepted types, rejected subtypes).
_OPTION_TYPES = {"bool": ((bool, np.bool_), ()), "int": (numbers.Integral, (bool, np.bool_)),
                 "float": (numbers.Real, (bool, np.bool_)), "str": (str, ())}


@dataclasses.dataclass(frozen=True)
class Cell(abc.ABC):
  """Base class; subclasses implement `init` and `recur`, and `initial_carry` and `project` where
  the defaults (one zero `h`; `x W_x + b`) do not fit."""

  matmul_dtype: str | None = dataclasses.field(default=None, kw_only=True)  # None: the params' dtype
  name = "cell"
  # True where `init` can be traced and its params are all a step reads, so that params of another form are
  # a mistake: the runner then checks them (`cells.check_params`). Cells whose params hold more (e.g. data
  # bound to them) or whose `init` runs on the host leave it False and check their own.
  params_match_init = False

  def __post_init__(self):
    for field in dataclasses.fields(self):  # e.g. peepholes="no" would otherwise be truthy
      annotation = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
      value, allowed = getattr(self, field.name), _OPTION_TYPES.get(annotation)
      if allowed and not (isinstance(value, allowed[0]) and not isinstance(value, allowed[1])):
        raise ValueError(f"{self.name} option {field.name} must be {annotation}, got {value!r}")
    if self.matmul_dtype is not None:
      try:
        jnp.dtype(self.matmul_dtype)
      except TypeError:
        raise ValueError(f"matmul_dtype: unknown dtype {self.matmul_dtype!r} (e.g. 'bfloat16')") from None

  def matmul(self, x: jax.Array, w: jax.Array) -> jax.Array:
    """`x @ w` in `matmul_dtype` with accumulation in the operands' dtype (see `rnn_jax.ops.matmul`)."""
    return ops.matmul(x, w, self.matmul_dtype)

  @abc.abstractmethod
  def init(self, key: jax.Array, input_size: int, hidden_size: int) -> Params:
    """Fresh params for `[..., I]` inputs and `H` hidden units."""

  def initial_carry(self, params: Params, batch_shape: Sequence[int]) -> Carry:
    """The zero carry for inputs of shape `[*batch_shape, I]`: here one `[*batch_shape, H]` h."""
    return jnp.zeros((*batch_shape, self.hidden_size(params)), params["w_h"].dtype)

  def project(self, params: Params, x_xI: jax.Array) -> jax.Array:
    """Input projection `[..., I] -> [..., G]`, hoistable over time: here `x W_x + b`."""
    xw = self.matmul(x_xI, params["w_x"])
    return xw + ops.along_last(params["b"], xw)

  @abc.abstractmethod
  def recur(self, params: Params, carry: Carry, z_BxG: jax.Array):
    """One time step from the projected input: `(carry, z) -> (carry, y_BxH)`."""

  def step(self, params: Params, carry: Carry, x_BxI: jax.Array):
    """One time step: `(carry, x_BxI) -> (carry, y_BxH)`."""
    return self.recur(params, carry, self.project(params, x_BxI))

  # Sizes are read off the params so that nothing about them is stored twice.
  def input_size(self, params: Params) -> int:
    return params["w_x"].shape[0]

  def hidden_size(self, params: Params) -> int:
    return params["w_h"].shape[0]

  def output_size(self, params: Params) -> int:
    return self.hidden_size(params)

  def carry_hidden(self, carry: Carry) -> jax.Array:
    """The hidden state `h` inside a carry (what a decoder or readout looks at)."""
    return carry
