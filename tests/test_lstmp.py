"""LSTMP against a direct NumPy loop in float64 (outputs, final carry, and gradients against central differences
of the loop along random directions) and against torch.nn.LSTM(proj_size=...) with the same weights (outputs and
weight gradients); a stack of LSTMP layers reads the projection's width."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import cells, scan
from tests.conftest import float64


def _sigmoid(x):
  return 1 / (1 + np.exp(-x))


def _numpy_lstmp(p, xs_BxTxI):
  """Sak et al. (2014) step by step: gates from x and the projected r, c' = f c + i g, r' = (o tanh c') W_p."""
  batch, steps, _ = xs_BxTxI.shape
  hidden, proj = p["w_p"].shape
  c, r, ys = np.zeros((batch, hidden)), np.zeros((batch, proj)), []
  for t in range(steps):
    z = xs_BxTxI[:, t] @ p["w_x"] + r @ p["w_h"] + p["b"]
    i, f, g, o = (z[:, k * hidden:(k + 1) * hidden] for k in range(4))
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    r = (_sigmoid(o) * np.tanh(c)) @ p["w_p"]
    ys.append(r)
  return np.stack(ys, axis=1), c, r


def test_lstmp_matches_a_numpy_loop_in_values_and_gradients():
  with float64():
    cell = cells.get("lstmp", proj_size=3)
    params = jax.tree.map(lambda w: w.astype(jnp.float64), cell.init(jax.random.PRNGKey(0), 4, 5))
    params["b"] = params["b"] + 0.3 * jax.random.normal(jax.random.PRNGKey(1), (20,), jnp.float64)
    xs = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (2, 6, 4), jnp.float64))
    weights = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (2, 6, 3), jnp.float64))
    assert {k: v.shape for k, v in params.items()} == {"w_x": (4, 20), "w_h": (3, 20), "b": (20,), "w_p": (5, 3)}

    (c, h), ys = scan.run(cell, params, xs)
    ys_ref, c_ref, h_ref = _numpy_lstmp(jax.tree.map(np.asarray, params), xs)
    np.testing.assert_allclose(ys, ys_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(c, c_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h, h_ref, rtol=1e-10, atol=1e-12)

    grads = jax.grad(lambda p: jnp.sum(scan.run(cell, p, xs)[1] * weights))(params)
    loss_ref = lambda p: np.sum(_numpy_lstmp(p, xs)[0] * weights)
    rng, eps = np.random.default_rng(0), 1e-6
    for _ in range(3):
      direction = {k: rng.normal(size=v.shape) for k, v in params.items()}
      shifted = lambda sign: {k: np.asarray(params[k]) + sign * eps * direction[k] for k in params}
      finite = (loss_ref(shifted(1)) - loss_ref(shifted(-1))) / (2 * eps)
      analytic = sum(float(np.sum(np.asarray(grads[k]) * direction[k])) for k in params)
      np.testing.assert_allclose(analytic, finite, rtol=1e-7)


def test_a_stack_of_lstmp_layers_reads_the_projection_width():
  cell = cells.get("lstmp", proj_size=4)
  stack = scan.init_stack(jax.random.PRNGKey(0), cell, 6, 10, num_layers=2)
  assert stack[1]["w_x"].shape == (4, 40)
  carries, ys = scan.run_stack(cell, stack, jnp.ones((3, 5, 6)))
  assert ys.shape == (3, 5, 4) and carries[1].c.shape == (3, 10) and carries[1].h.shape == (3, 4)


def test_lstmp_without_a_projection_size_is_refused():
  with pytest.raises(ValueError, match="lstmp needs proj_size > 0"):
    cells.get("lstmp")
  with pytest.raises(ValueError, match="bad options for cell 'lstm'"):
    cells.get("lstm", proj_size=4)


def test_lstmp_matches_torch_lstm_with_proj_size():
  torch = pytest.importorskip("torch")
  cell = cells.get("lstmp", proj_size=3)
  params = cell.init(jax.random.PRNGKey(0), 4, 5)
  xs = jax.random.normal(jax.random.PRNGKey(2), (2, 6, 4))
  weights = jax.random.normal(jax.random.PRNGKey(3), (2, 6, 3))
  lstm = torch.nn.LSTM(4, 5, proj_size=3, batch_first=True)
  as_torch = lambda w: torch.nn.Parameter(torch.tensor(np.asarray(w)))
  lstm.weight_ih_l0, lstm.weight_hh_l0 = as_torch(params["w_x"].T), as_torch(params["w_h"].T)
  lstm.bias_ih_l0, lstm.bias_hh_l0 = as_torch(params["b"]), as_torch(jnp.zeros(20))
  lstm.weight_hr_l0 = as_torch(params["w_p"].T)
  ys_torch, _ = lstm(torch.tensor(np.asarray(xs)))
  (ys_torch * torch.tensor(np.asarray(weights))).sum().backward()

  loss = lambda p: jnp.sum(scan.run(cell, p, xs)[1] * weights)
  ys, grads = scan.run(cell, params, xs)[1], jax.grad(loss)(params)
  np.testing.assert_allclose(ys, ys_torch.detach().numpy(), rtol=1e-5, atol=1e-6)
  for name, torch_grad in (("w_x", lstm.weight_ih_l0.grad.T), ("w_h", lstm.weight_hh_l0.grad.T),
                           ("b", lstm.bias_ih_l0.grad), ("w_p", lstm.weight_hr_l0.grad.T)):
    np.testing.assert_allclose(grads[name], torch_grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)
