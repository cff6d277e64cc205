"""Attention: scores against a per-position reference, masking, padding invariance, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import attention, ops
from tests.conftest import float64

B, S, Q, M, A = 3, 6, 5, 5, 4
LENGTHS = np.array([6, 2, 4])


def _setup(kind, seed=0):
  keys = jax.random.split(jax.random.PRNGKey(seed), 3)
  params = attention.init(keys[0], kind, Q, M, A)
  query = jax.random.normal(keys[1], (B, Q))
  memory = jax.random.normal(keys[2], (B, S, M))
  return params, query, memory


def _reference_scores(kind, params, query, memory):
  """Score of each position computed one memory vector at a time, from the papers' formulas."""
  p = jax.tree.map(np.asarray, params)
  query, memory = np.asarray(query, np.float64), np.asarray(memory, np.float64)
  out = np.zeros((B, S))
  for b in range(B):
    for j in range(S):
      q, m = query[b], memory[b, j]
      if kind == "bahdanau":
        out[b, j] = p["v"] @ np.tanh(q @ p["w_q"] + m @ p["w_k"] + p["b"])
      elif kind == "luong_dot":
        out[b, j] = q @ m
      else:
        out[b, j] = q @ (p["w_a"].T @ m)
  return out


@pytest.mark.parametrize("kind", attention.KINDS)
def test_matches_reference_and_masks_padding(kind, maybe_jit):
  params, query, memory = _setup(kind)
  if kind == "bahdanau":  # a nonzero bias so that it is tested too
    params["b"] = jnp.linspace(-1.0, 1.0, A)
  mask = ops.mask_from_lengths(jnp.asarray(LENGTHS), S)
  keys = attention.prepare(kind, params, memory)
  context, weights = maybe_jit(attention.attend, static_argnums=0)(kind, params, query, memory, keys, mask)
  ref = _reference_scores(kind, params, query, memory)
  for b, n in enumerate(LENGTHS):
    e = np.exp(ref[b, :n] - ref[b, :n].max())
    expected = np.concatenate([e / e.sum(), np.zeros(S - n)])
    np.testing.assert_allclose(weights[b], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context[b], expected @ np.asarray(memory[b]), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jnp.sum(weights, axis=-1), np.ones(B), rtol=1e-6)
  assert np.all(np.asarray(weights)[~np.asarray(mask)] == 0.0)


@pytest.mark.parametrize("kind", attention.KINDS)
def test_padding_content_does_not_matter(kind):
  """Changing what lies in the padded positions changes neither context nor weights nor gradients."""
  params, query, memory = _setup(kind)
  mask = ops.mask_from_lengths(jnp.asarray(LENGTHS), S)
  garbage = jnp.where(mask[:, :, None], memory, 1e3 * jax.random.normal(jax.random.PRNGKey(9), memory.shape))

  def loss(params, query, memory):
    context, weights = attention.attend(kind, params, query, memory, attention.prepare(kind, params, memory), mask)
    return jnp.sum(jnp.sin(context)) + jnp.sum(weights ** 2), (context, weights)

  (l1, aux1), g1 = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, query, memory)
  (l2, aux2), g2 = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, query, garbage)
  for u, v in zip(jax.tree.leaves((l1, aux1, g1)), jax.tree.leaves((l2, aux2, g2)), strict=True):
    np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


def test_unpadded_equals_padded():
  """A sentence alone (no padding) attends exactly as it does inside a padded batch."""
  params, query, memory = _setup("bahdanau")
  mask = ops.mask_from_lengths(jnp.asarray(LENGTHS), S)
  context, weights = attention.attend("bahdanau", params, query, memory,
                                      attention.prepare("bahdanau", params, memory), mask)
  n = LENGTHS[1]
  short = memory[1:2, :n]
  c1, w1 = attention.attend("bahdanau", params, query[1:2], short, attention.prepare("bahdanau", params, short),
                            jnp.ones((1, n), bool))
  np.testing.assert_allclose(c1[0], context[1], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(w1[0], weights[1, :n], rtol=1e-5, atol=1e-6)


def test_empty_row_gives_zeros_and_finite_gradients():
  params, query, memory = _setup("luong_general")
  mask = ops.mask_from_lengths(jnp.array([0, 3, 6]), S)

  def loss(query):
    context, weights = attention.attend("luong_general", params, query, memory,
                                        attention.prepare("luong_general", params, memory), mask)
    return jnp.sum(context) + jnp.sum(weights), (context, weights)

  grad, (context, weights) = jax.grad(loss, has_aux=True)(query)
  np.testing.assert_array_equal(weights[0], np.zeros(S))
  np.testing.assert_array_equal(context[0], np.zeros(M))
  assert np.all(np.isfinite(grad))


def test_gradient_matches_finite_differences():
  with float64():
    params, query, memory = jax.tree.map(lambda x: x.astype(jnp.float64), _setup("bahdanau"))
    mask = ops.mask_from_lengths(jnp.asarray(LENGTHS), S)

    def loss(w_q):
      p = dict(params, w_q=w_q)
      context, _ = attention.attend("bahdanau", p, query, memory, attention.prepare("bahdanau", p, memory), mask)
      return jnp.sum(context * jnp.arange(M, dtype=jnp.float64)[None, :])

    grad = jax.grad(loss)(params["w_q"])
    direction = jax.random.normal(jax.random.PRNGKey(3), params["w_q"].shape, jnp.float64)
    eps = 1e-5
    numeric = (loss(params["w_q"] + eps * direction) - loss(params["w_q"] - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(jnp.sum(grad * direction), numeric, rtol=1e-7)


def test_errors():
  with pytest.raises(ValueError, match="unknown attention"):
    attention.init(jax.random.PRNGKey(0), "cosine", Q, M, A)
  with pytest.raises(ValueError, match="query size == memory size"):
    attention.init(jax.random.PRNGKey(0), "luong_dot", 3, 4)
