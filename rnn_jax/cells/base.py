"""The cell protocol shared by every recurrent family.

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
import functools
import numbers
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Params = Any
Carry = Any


def fast_sigmoid(x):
  """sigmoid(x) via tanh: one transcendental, fuses better on CPU."""
  return 0.5 * (1.0 + jnp.tanh(0.5 * x))


def matmul(x_xK: jax.Array, w_KxN: jax.Array, dtype=None) -> jax.Array:
  """`x @ w`; with `dtype`, both operands are cast to it and the product is accumulated
  in and returned as the dtype `x @ w` would have (float32 for float32 operands).

  The mixed-precision product has its own VJP (`_mixed_matmul`): it casts the cotangent to
  `dtype` too and returns float32 gradients. JAX's own transpose gives the low-precision copy of
  the weights a low-precision cotangent, so in a scan's backward loop every step's weight gradient
  was rounded to bfloat16 before the float32 sum (and the products read upcast operands).
  Like any custom VJP it has no forward-mode derivative (`jax.jvp`); use `dtype=None` there.
  A `dtype` equal to the operands' (e.g. the configs' "float32") is the plain product.
  """
  if dtype is None or jnp.dtype(dtype) == jnp.result_type(x_xK, w_KxN):
    return x_xK @ w_KxN
  return _mixed_matmul((jnp.dtype(dtype), x_xK.dtype, w_KxN.dtype), x_xK, w_KxN)


def contract_rows(a_xK, b_xN, dtype):
  """`a^T b` over all leading axes (the rows of both): `[K, N]`, accumulated in `dtype`."""
  a_MxK, b_MxN = jnp.reshape(a_xK, (-1, a_xK.shape[-1])), jnp.reshape(b_xN, (-1, b_xN.shape[-1]))
  return jax.lax.dot_general(a_MxK, b_MxN, (((0,), (0,)), ((), ())), preferred_element_type=dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _mixed_matmul(dtypes, x_xK, w_KxN):
  """`dtypes`: (the matmul dtype, x's, w's)."""
  return _mixed_matmul_fwd(dtypes, x_xK, w_KxN)[0]


def _mixed_matmul_fwd(dtypes, x_xK, w_KxN):
  low_x, low_w = x_xK.astype(dtypes[0]), w_KxN.astype(dtypes[0])
  return jnp.matmul(low_x, low_w, preferred_element_type=jnp.result_type(x_xK, w_KxN)), (low_x, low_w)


def _mixed_matmul_bwd(dtypes, saved, d_xN):
  (low, x_dtype, w_dtype), (low_x, low_w) = dtypes, saved
  low_d = d_xN.astype(low)
  dx = jnp.matmul(low_d, low_w.T, preferred_element_type=d_xN.dtype).astype(x_dtype)
  dw = contract_rows(low_x, low_d, d_xN.dtype).astype(w_dtype)
  return dx, dw


_mixed_matmul.defvjp(_mixed_matmul_fwd, _mixed_matmul_bwd)


def along_last(v_F: jax.Array, like: jax.Array) -> jax.Array:
  """Reshapes a `[F]` vector to `[1, ..., 1, F]` of `like`'s rank (no implicit rank promotion)."""
  return jnp.reshape(v_F, (1,) * (like.ndim - 1) + v_F.shape)


def orthogonal_blocks(key, hidden_size: int, num_blocks: int, dtype=jnp.float32):
  """`[H, num_blocks*H]`: one independent orthogonal `H x H` matrix per gate."""
  keys = jax.random.split(key, num_blocks)
  init = jax.nn.initializers.orthogonal()
  return jnp.concatenate([init(k, (hidden_size, hidden_size), dtype) for k in keys], axis=1)


def glorot_uniform(key, shape, dtype=jnp.float32):
  return jax.nn.initializers.glorot_uniform()(key, shape, dtype)


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
    """`x @ w` in `matmul_dtype` with accumulation in the operands' dtype (see `matmul`)."""
    return matmul(x, w, self.matmul_dtype)

  @abc.abstractmethod
  def init(self, key: jax.Array, input_size: int, hidden_size: int) -> Params:
    """Fresh params for `[..., I]` inputs and `H` hidden units."""

  def initial_carry(self, params: Params, batch_shape: Sequence[int]) -> Carry:
    """The zero carry for inputs of shape `[*batch_shape, I]`: here one `[*batch_shape, H]` h."""
    return jnp.zeros((*batch_shape, self.hidden_size(params)), params["w_h"].dtype)

  def project(self, params: Params, x_xI: jax.Array) -> jax.Array:
    """Input projection `[..., I] -> [..., G]`, hoistable over time: here `x W_x + b`."""
    xw = self.matmul(x_xI, params["w_x"])
    return xw + along_last(params["b"], xw)

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


def layer_norm(params, x, eps=1e-5):
  """Layer normalisation over the last axis with `params = {"scale", "bias"}`."""
  mean = jnp.mean(x, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
  normed = (x - mean) * jax.lax.rsqrt(var + eps)
  return normed * along_last(params["scale"], x) + along_last(params["bias"], x)


def layer_norm_params(size: int, dtype=jnp.float32):
  return {"scale": jnp.ones((size,), dtype), "bias": jnp.zeros((size,), dtype)}
