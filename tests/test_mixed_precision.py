"""`matmul_dtype="bfloat16"`: bfloat16 matmul operands, float32 accumulation, carries and params."""

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from rnn_jax import cells, scan

B, T, I, H = 3, 6, 5, 8


def _bf16(a):
  """Rounds to bfloat16 and back to float64 (what a bfloat16 matmul operand holds)."""
  return np.asarray(np.asarray(a, np.float32).astype(ml_dtypes.bfloat16), np.float64)


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _reference_lstm(params, xs_BxTxI):
  """Float64 numpy LSTM whose matmuls read bfloat16-rounded operands (products exact, sums in float64)."""
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  c = h = np.zeros((xs_BxTxI.shape[0], H))
  ys = []
  for t in range(xs_BxTxI.shape[1]):
    z = _bf16(xs_BxTxI[:, t]) @ _bf16(p["w_x"]) + p["b"] + _bf16(h) @ _bf16(p["w_h"])
    i, f, g, o = np.split(z, 4, axis=-1)
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    ys.append(h)
  return np.stack(ys, axis=1)


def _setup(name="lstm"):
  cell = cells.get(name, matmul_dtype="bfloat16")
  params = cell.init(jax.random.PRNGKey(0), I, H)
  xs = jax.random.normal(jax.random.PRNGKey(1), (B, T, I))
  return cell, params, xs


@pytest.mark.parametrize("backward", ["fused", "autodiff"])
def test_lstm_matches_a_bfloat16_operand_reference(backward):
  cell, params, xs = _setup()
  _, ys = jax.jit(lambda p, x: scan.run(cell, p, x, backward=backward))(params, xs)
  assert ys.dtype == jnp.float32
  expected = _reference_lstm(params, np.asarray(xs))
  # Accumulated in float32: within float32 rounding of the float64 reference ...
  np.testing.assert_allclose(np.asarray(ys, np.float64), expected, atol=2e-5)
  # ... and measurably away from full float32 matmuls, so the test can tell the two apart.
  _, ys32 = scan.run(cells.get("lstm"), params, xs)
  assert float(jnp.max(jnp.abs(ys32 - ys))) > 1e-4


@pytest.mark.parametrize("name", ["lstm", "gru", "elman"])
def test_fused_and_autodiff_gradients_agree_and_stay_float32(name):
  cell, params, xs = _setup(name)
  def grads(cell, backward):
    loss = lambda p, x: jnp.sum(jnp.sin(scan.run(cell, p, x, backward=backward)[1]))
    return jax.jit(jax.grad(loss, argnums=(0, 1)))(params, xs)
  fused, autodiff = grads(cell, "fused"), grads(cell, "autodiff")
  full = grads(cells.get(name), "autodiff")
  for g in jax.tree.leaves(fused):
    assert g.dtype == jnp.float32
  errors = []
  for a, b, c in zip(jax.tree.leaves(fused), jax.tree.leaves(autodiff), jax.tree.leaves(full), strict=True):
    scale = float(jnp.max(jnp.abs(c)))
    # Both are float32 gradients up to bfloat16 rounding of the matmul operands (8 bits: 0.4 %).
    np.testing.assert_allclose(a, c, atol=2e-2 * scale)
    np.testing.assert_allclose(b, c, atol=2e-2 * scale)
    errors.append(float(jnp.max(jnp.abs(a - c))) / scale)
  assert max(errors) > 1e-4  # and the rounding is there: not float32 matmuls after all


@pytest.mark.parametrize("backward", ["fused", "autodiff"])
def test_every_matmul_reads_bfloat16_and_accumulates_float32(backward):
  cell, params, xs = _setup()
  step = jax.grad(lambda p, x: jnp.sum(scan.run(cell, p, x, backward=backward)[1] ** 2), argnums=(0, 1))
  dots = []

  def collect(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "dot_general":
        dots.append(([v.aval.dtype for v in eqn.invars], eqn.outvars[0].aval.dtype))
      for value in eqn.params.values():
        for sub in value if isinstance(value, (tuple, list)) else (value,):
          inner = getattr(sub, "jaxpr", sub)
          if hasattr(inner, "eqns"):
            collect(inner)

  collect(jax.make_jaxpr(step)(params, xs).jaxpr)
  assert len(dots) >= 4  # projection, recurrence, and the backward's
  for operands, out in dots:
    if backward == "fused":  # the hand-written backward casts cotangents too
      assert (operands, out) == ([jnp.bfloat16, jnp.bfloat16], jnp.float32), dots
    else:  # JAX's transpose of a mixed dot reads float32 cotangents against the bfloat16 copies
      assert jnp.bfloat16 in operands, dots
  assert ([jnp.bfloat16, jnp.bfloat16], jnp.float32) in dots


def test_unknown_matmul_dtype_is_named():
  with pytest.raises(ValueError, match="matmul_dtype.*'bf17'"):
    cells.get("lstm", matmul_dtype="bf17")
