"""The ground floor's small layers, as `init` / apply pairs of plain pytrees, and their initialisers.

  params = layers.dense_init(key, I, O)      # {"w": [I, O], "b": [O]}
  y_xO = layers.dense(params, x_xI)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rnn_jax.ops import along_last


def glorot_uniform(key, shape, dtype=jnp.float32):
  return jax.nn.initializers.glorot_uniform()(key, shape, dtype)


def orthogonal_blocks(key, hidden_size: int, num_blocks: int, dtype=jnp.float32):
  """`[H, num_blocks*H]`: one independent orthogonal `H x H` matrix per gate."""
  keys = jax.random.split(key, num_blocks)
  init = jax.nn.initializers.orthogonal()
  return jnp.concatenate([init(k, (hidden_size, hidden_size), dtype) for k in keys], axis=1)


def dense_init(key, fan_in: int, fan_out: int, bias=None):
  """`{"w": [fan_in, fan_out] Glorot-uniform, "b": [fan_out]}`; `bias` the initial bias (zeros if None)."""
  return {"w": glorot_uniform(key, (fan_in, fan_out)),
          "b": jnp.zeros((fan_out,)) if bias is None else jnp.asarray(bias, jnp.float32)}


def dense(params, x_xI: jax.Array) -> jax.Array:
  """`x W + b` over the last axis: `[..., I] -> [..., O]`."""
  y = x_xI @ params["w"]
  return y + along_last(params["b"], y)


def layer_norm(params, x, eps=1e-5):
  """Layer normalisation over the last axis with `params = {"scale", "bias"}`."""
  mean = jnp.mean(x, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
  normed = (x - mean) * jax.lax.rsqrt(var + eps)
  return normed * along_last(params["scale"], x) + along_last(params["bias"], x)


def layer_norm_params(size: int, dtype=jnp.float32):
  return {"scale": jnp.ones((size,), dtype), "bias": jnp.zeros((size,), dtype)}
