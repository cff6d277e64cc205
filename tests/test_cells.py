"""Cells against independent implementations, finite differences, and their options."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rnn_jax import cells, scan
from tests.conftest import float64

B, T, I, H = 3, 6, 4, 5
ALL_CELLS = [("elman", {}), ("elman", {"activation": "relu"}), ("irnn", {}), ("lstm", {}),
             ("lstm", {"peepholes": True}), ("lstm", {"layer_norm": True}),
             ("lstm", {"peepholes": True, "layer_norm": True}), ("gru", {}), ("gru", {"reset_after": False}),
             ("clockwork", {"periods": (1, 2, 3, 4, 5)})]
CELL_IDS = [f"{n}-{'-'.join(o) or 'default'}" for n, o in ALL_CELLS]


def _inputs(seed=0, dtype=jnp.float32):
  return jax.random.normal(jax.random.PRNGKey(seed), (B, T, I), dtype)


def _flax_lstm_params(p):
  """Maps our fused LSTM params onto flax.linen.LSTMCell's per-gate Dense layers."""
  out = {}
  for k, gate in enumerate("ifgo"):
    sl = slice(k * H, (k + 1) * H)
    out["i" + gate] = {"kernel": p["w_x"][:, sl]}
    out["h" + gate] = {"kernel": p["w_h"][:, sl], "bias": p["b"][sl]}
  return {"params": out}


def _flax_gru_params(p):
  out = {"hn": {"kernel": p["w_h"][:, 2 * H:], "bias": p["b_hn"]}}
  for k, gate in enumerate("rzn"):
    sl = slice(k * H, (k + 1) * H)
    out["i" + gate] = {"kernel": p["w_x"][:, sl], "bias": p["b"][sl]}
    if gate != "n":
      out["h" + gate] = {"kernel": p["w_h"][:, sl]}
  return {"params": out}


def _flax_run(flax_cell, flax_params, xs, carry):
  def body(carry, x):
    return flax_cell.apply(flax_params, carry, x)
  carry, ys = jax.lax.scan(body, carry, jnp.swapaxes(xs, 0, 1))
  return carry, jnp.swapaxes(ys, 0, 1)


@pytest.mark.parametrize("name,to_flax,flax_cell", [
    ("lstm", _flax_lstm_params, nn.LSTMCell(H)),
    ("gru", _flax_gru_params, nn.GRUCell(H)),
])
@pytest.mark.parametrize("hoist", [True, False])
def test_matches_flax_outputs_and_gradients(name, to_flax, flax_cell, hoist):
  cell = cells.get(name)
  params = cell.init(jax.random.PRNGKey(1), I, H)
  params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.PRNGKey(2), a.shape), params)
  xs = _inputs()

  def ours(params, xs):
    carry, ys = scan.run(cell, params, xs, hoist=hoist)
    return jnp.sum(ys ** 2) + jnp.sum(cell.carry_hidden(carry)), ys

  def theirs(params, xs):
    flax_carry = (jnp.zeros((B, H)), jnp.zeros((B, H))) if name == "lstm" else jnp.zeros((B, H))
    carry, ys = _flax_run(flax_cell, to_flax(params), xs, flax_carry)
    h = carry[1] if name == "lstm" else carry
    return jnp.sum(ys ** 2) + jnp.sum(h), ys

  (loss_a, ys_a), grads_a = jax.value_and_grad(ours, argnums=(0, 1), has_aux=True)(params, xs)
  (loss_b, ys_b), grads_b = jax.value_and_grad(theirs, argnums=(0, 1), has_aux=True)(params, xs)
  np.testing.assert_allclose(ys_a, ys_b, atol=1e-5)
  np.testing.assert_allclose(loss_a, loss_b, rtol=1e-5)
  for ga, gb in zip(jax.tree.leaves(grads_a), jax.tree.leaves(grads_b)):
    np.testing.assert_allclose(ga, gb, atol=1e-5)


@pytest.mark.parametrize("name,options,activation", [("elman", {}, np.tanh),
                                                     ("irnn", {}, lambda v: np.maximum(v, 0)),
                                                     ("elman", {"recurrent_init": "normal"}, np.tanh)])
def test_elman_closed_form_and_recurrent_inits(name, options, activation):
  cell = cells.get(name, **options)
  hidden = 64
  p = jax.tree.map(np.asarray, cell.init(jax.random.PRNGKey(3), I, hidden))
  w_h = p["w_h"].astype(np.float64)
  if name == "irnn":  # Le et al. 2015: identity recurrence
    np.testing.assert_array_equal(w_h, np.eye(hidden))
  elif options:  # N(0, 1/H) entries
    assert abs(w_h.std() * np.sqrt(hidden) - 1) < 0.05 and abs(w_h.mean()) < 0.01
  else:  # orthogonal
    np.testing.assert_allclose(w_h.T @ w_h, np.eye(hidden), atol=1e-5)
  p["b"] = np.random.RandomState(2).randn(hidden).astype(np.float32)
  x = np.random.RandomState(0).randn(B, I).astype(np.float32)
  h = np.random.RandomState(1).randn(B, hidden).astype(np.float32)
  expected = activation(x @ p["w_x"] + p["b"] + h @ p["w_h"])
  new_h, y = cell.step(p, jnp.asarray(h), jnp.asarray(x))
  np.testing.assert_allclose(new_h, expected, atol=1e-5)
  np.testing.assert_allclose(y, expected, atol=1e-5)


def test_gru_reset_before_closed_form():
  """Cho et al. 2014 form, written out by hand in numpy for one step."""
  cell = cells.get("gru", reset_after=False)
  p = jax.tree.map(np.asarray, cell.init(jax.random.PRNGKey(3), I, H))
  x = np.random.RandomState(0).randn(B, I).astype(np.float32)
  h = np.random.RandomState(1).randn(B, H).astype(np.float32)
  sig = lambda v: 1 / (1 + np.exp(-v))
  wx, wh, b = p["w_x"], p["w_h"], p["b"]
  r = sig(x @ wx[:, :H] + b[:H] + h @ wh[:, :H])
  z = sig(x @ wx[:, H:2 * H] + b[H:2 * H] + h @ wh[:, H:2 * H])
  n = np.tanh(x @ wx[:, 2 * H:] + b[2 * H:] + (r * h) @ wh[:, 2 * H:])
  expected = (1 - z) * n + z * h
  new_h, y = cell.step(p, jnp.asarray(h), jnp.asarray(x))
  np.testing.assert_allclose(new_h, expected, atol=1e-5)
  np.testing.assert_allclose(y, expected, atol=1e-5)


def test_lstm_peephole_and_layer_norm_closed_form():
  cell = cells.get("lstm", peepholes=True, layer_norm=True)
  p = cell.init(jax.random.PRNGKey(4), I, H)
  p = jax.tree.map(lambda a: np.asarray(a + 0.2 * jax.random.normal(jax.random.PRNGKey(5), a.shape)), p)
  rs = np.random.RandomState(2)
  x, h, c = rs.randn(B, I), rs.randn(B, H), rs.randn(B, H)
  sig = lambda v: 1 / (1 + np.exp(-v))

  def ln(q, v):
    mu, var = v.mean(-1, keepdims=True), v.var(-1, keepdims=True)
    return (v - mu) / np.sqrt(var + 1e-5) * q["scale"] + q["bias"]

  zz = ln(p["ln_x"], x @ p["w_x"]) + p["b"] + ln(p["ln_h"], h @ p["w_h"])
  i, f, g, o = np.split(zz, 4, axis=-1)
  i, f = i + c * p["w_peep"][0], f + c * p["w_peep"][1]
  c_new = sig(f) * c + sig(i) * np.tanh(g)
  h_new = sig(o + c_new * p["w_peep"][2]) * np.tanh(ln(p["ln_c"], c_new))
  carry, y = cell.step(p, cells.LSTMState(jnp.asarray(c, jnp.float32), jnp.asarray(h, jnp.float32)),
                       jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(carry.c, c_new, atol=1e-5)
  np.testing.assert_allclose(carry.h, h_new, atol=1e-5)
  np.testing.assert_allclose(y, h_new, atol=1e-5)


def test_lstm_cell_clip_bounds_the_cell_state_closed_form():
  """A forget gate held open and a saturated input add ~1 per step to c: unclipped it grows with time; with
  `cell_clip` it stays at the clip, and the step equals the closed form on the clipped state."""
  p = cells.get("lstm").init(jax.random.PRNGKey(4), I, H)
  p = dict(p, w_h=jnp.zeros_like(p["w_h"]), b=p["b"].at[:3 * H].set(20.0))  # i, f, g -> 1; o = sigmoid(0)
  xs = jnp.zeros((B, 30, I))
  final, _ = scan.run(cells.get("lstm"), p, xs)
  clipped, _ = scan.run(cells.get("lstm", cell_clip=3.0), p, xs)
  assert float(final.c.min()) > 29.0 and float(jnp.abs(clipped.c).max()) == 3.0
  np.testing.assert_allclose(clipped.h, 0.5 * np.tanh(3.0), atol=1e-5)
  with pytest.raises(ValueError, match="cell_clip must be >= 0"):
    cells.get("lstm", cell_clip=-1.0)


def test_lstm_init_forget_bias_and_orthogonal_recurrence():
  p = cells.get("lstm", forget_bias=1.0).init(jax.random.PRNGKey(0), I, H)
  np.testing.assert_array_equal(p["b"][H:2 * H], 1.0)
  np.testing.assert_array_equal(p["b"][:H], 0.0)
  for k in range(4):
    block = p["w_h"][:, k * H:(k + 1) * H]
    np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-5)


@pytest.mark.parametrize("name,options", ALL_CELLS, ids=CELL_IDS)
def test_finite_difference_gradients_float64(name, options):
  with float64():
    cell = cells.get(name, **options)
    params = cell.init(jax.random.PRNGKey(0), I, H)
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    xs = jnp.asarray(_inputs(1), jnp.float64)
    lengths = jnp.array([T, 2, 4])

    def loss(params, xs):
      carry, ys = scan.run(cell, params, xs, lengths=lengths)
      return jnp.sum(jnp.sin(ys)) + jnp.sum(jnp.cos(cell.carry_hidden(carry)))

    check_grads(loss, (params, xs), order=1, modes=["rev"], atol=1e-5, rtol=1e-5, eps=1e-6)


@pytest.mark.parametrize("name,options", ALL_CELLS, ids=CELL_IDS)
def test_vmap_over_an_extra_axis_equals_the_batched_step(name, options, maybe_jit):
  cell = cells.get(name, **options)
  params = cell.init(jax.random.PRNGKey(0), I, H)
  x = _inputs()[:, 0]
  carry = cell.initial_carry(params, (B,))
  batched = maybe_jit(cell.step)(params, carry, x)
  stacked = maybe_jit(jax.vmap(cell.step, in_axes=(None, 0, 0)))(
      params, jax.tree.map(lambda c: c[:, None], carry), x[:, None])
  for u, v in zip(jax.tree.leaves(stacked), jax.tree.leaves(batched)):
    np.testing.assert_allclose(u[:, 0], v, atol=1e-6)
  assert batched[1].shape == (B, H)


def test_registry_errors_name_the_problem():
  with pytest.raises(ValueError, match=r"unknown cell 'lstn'.*'lstm'"):
    cells.get("lstn")
  with pytest.raises(ValueError, match=r"bad options for cell 'gru'.*peepholes"):
    cells.get("gru", peepholes=True)
  with pytest.raises(ValueError, match="activation"):
    cells.get("elman", activation="sigmoid")
  with pytest.raises(ValueError, match="lstm option peepholes must be bool, got 'no'"):
    cells.get("lstm", peepholes="no")
  with pytest.raises(ValueError, match="gru option reset_after must be bool, got 1"):
    cells.get("gru", reset_after=1)
  with pytest.raises(ValueError, match="lstm option forget_bias must be float, got '1.0'"):
    cells.get("lstm", forget_bias="1.0")
  assert cells.get("lstm", forget_bias=2).forget_bias == 2  # an int is a float option's value
