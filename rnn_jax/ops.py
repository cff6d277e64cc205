"""The ground floor: array ops every part of the library shares (no params, no cells).

  y = ops.matmul(x_xK, w_KxN, "bfloat16")          # mixed precision with its own VJP
  h = ops.ACTIVATIONS["tanh"](z)                   # dh/dz = ops.ACTIVATION_SLOPES["tanh"](h)
  valid_BxT = ops.mask_from_lengths(lengths_B, T)  # True on each sequence's valid steps
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def fast_sigmoid(x):
  """sigmoid(x) via tanh: one transcendental, fuses better on CPU."""
  return 0.5 * (1.0 + jnp.tanh(0.5 * x))


# name -> the activation, and its derivative written in terms of its output `h` (what a backward pass keeps).
ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}
ACTIVATION_SLOPES = {"tanh": lambda h: 1.0 - h * h, "relu": lambda h: (h > 0).astype(h.dtype)}


def along_last(v_F: jax.Array, like: jax.Array) -> jax.Array:
  """Reshapes a `[F]` vector to `[1, ..., 1, F]` of `like`'s rank (no implicit rank promotion)."""
  return jnp.reshape(v_F, (1,) * (like.ndim - 1) + v_F.shape)


def mask_from_lengths(lengths_B: jax.Array, size: int) -> jax.Array:
  """`[B, size]` boolean, True at positions `< lengths[b]`."""
  return jnp.arange(size)[None, :] < jnp.asarray(lengths_B)[:, None]


def valid_at(t, lengths_B: jax.Array, like: jax.Array) -> jax.Array:
  """`[B, 1, ...]` boolean of `like`'s rank, True where step `t` is inside the sequence (broadcasts to `like`)."""
  valid_B = t < lengths_B
  return valid_B.reshape(valid_B.shape + (1,) * (like.ndim - 1))


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
