"""`matmul_dtype="bfloat16"`: bfloat16 matmul operands, float32 accumulation, carries and params."""

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from rnn_jax import cells, ops, scan

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
  for operands, out in dots:  # backward passes cast the cotangents too (fused and ops.matmul's VJP)
    assert (operands, out) == ([jnp.bfloat16, jnp.bfloat16], jnp.float32), dots


def test_mixed_matmul_vjp_matches_a_bfloat16_operand_reference():
  # ops.matmul's own VJP: cotangent and operands rounded to bfloat16, products summed in float32.
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 3, 16))
  w = jax.random.normal(jax.random.PRNGKey(1), (16, 24))
  d = jax.random.normal(jax.random.PRNGKey(2), (4, 3, 24))
  out, vjp = jax.vjp(lambda x, w: ops.matmul(x, w, "bfloat16"), x, w)
  dx, dw = vjp(d)
  assert out.dtype == dx.dtype == dw.dtype == jnp.float32
  np.testing.assert_allclose(out, _bf16(x) @ _bf16(w), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dx, _bf16(d) @ _bf16(w).T, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dw, np.einsum("abk,abn->kn", _bf16(x), _bf16(d)), rtol=1e-5, atol=1e-5)
  assert float(jnp.max(jnp.abs(dw - np.einsum("abk,abn->kn", np.asarray(x), np.asarray(d))))) > 1e-3


@pytest.mark.parametrize("name", ["gru", "elman"])
def test_autodiff_weight_gradients_accumulate_in_float32(name):
  # Through a scan, autodiff and the fused backward both sum per-step products of bfloat16 operands
  # in float32, so their weight and input gradients agree to float32 rounding. (JAX's own transpose
  # of a mixed dot rounded every step's weight gradient to bfloat16 first: 1e-3 apart over 30 steps.
  # The LSTM's sigmoid derivatives differ in the last float32 bit between the two, which the
  # bfloat16 cotangents can amplify; the fused bias gradient reads bfloat16 `dz`.)
  cell = cells.get(name, matmul_dtype="bfloat16")
  params = cell.init(jax.random.PRNGKey(0), I, H)
  xs = jax.random.normal(jax.random.PRNGKey(1), (B, 30, I))
  def grads(backward):
    loss = lambda p, x: jnp.sum(jnp.sin(scan.run(cell, p, x, backward=backward)[1]))
    return jax.jit(jax.grad(loss, argnums=(0, 1)))(params, xs)
  (fused_params, fused_xs), (autodiff_params, autodiff_xs) = grads("fused"), grads("autodiff")
  for a, b in [(fused_xs, autodiff_xs), (fused_params["w_x"], autodiff_params["w_x"]),
               (fused_params["w_h"], autodiff_params["w_h"])]:
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * float(jnp.max(jnp.abs(a))))


def test_unknown_matmul_dtype_is_named():
  with pytest.raises(ValueError, match="matmul_dtype.*'bf17'"):
    cells.get("lstm", matmul_dtype="bf17")
