"""The runner's cuDNN layer (`backward="cudnn"`) against its scan, and its weight packing.

On CPU the cuDNN call is replaced by `jax.experimental.rnn.lstm_ref`, JAX's pure reference of the
same kernel, unpacking the weights with JAX's own `unpack_lstm_weights`: that checks rnn_jax's
packing, carries, lengths, reverse and the one-call bidirectional layer against the scan, values and
gradients. On a CUDA GPU `test_cudnn_on_gpu_equals_scan` runs the real kernel.
"""

import jax
from jax.experimental import rnn as jax_rnn
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import cells, scan
from rnn_jax.fused import cudnn, policy

B, T, I, H = 3, 7, 5, 4
LENGTHS = (7, 2, 5)


def _reference_lstm(calls):
  """`cudnn.lstm` as jax.experimental.rnn's reference computes it; records each call's directions."""
  def lstm(x, h0, c0, weights, lengths, *, input_size, hidden_size, bidirectional):
    calls.append(bidirectional)
    unpacked = jax_rnn.unpack_lstm_weights(weights, input_size, hidden_size, 1, bidirectional)
    return jax_rnn.lstm_ref(x, h0, c0, *unpacked, lengths, input_size, hidden_size, 1, 0.0, bidirectional)
  return lstm


@pytest.fixture
def reference_gpu(monkeypatch, fresh_traces):
  """Traces as on a GPU, with the cuDNN call replaced by JAX's reference; yields the calls made."""
  del fresh_traces
  calls = []
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  monkeypatch.setattr(cudnn, "lstm", _reference_lstm(calls))
  yield calls


def _assert_close(got, want, rtol=1e-5, atol=1e-5):
  jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol),
               got, want)


def _inputs(key=0, time_major=False):
  kx, kc, kh = jax.random.split(jax.random.PRNGKey(key), 3)
  xs = jax.random.normal(kx, (T, B, I) if time_major else (B, T, I))
  carry = cells.LSTMState(jax.random.normal(kc, (B, H)), jax.random.normal(kh, (B, H)))
  return xs, carry


def test_pack_matches_jax_layout():
  cell = cells.get("lstm")
  params = [cell.init(jax.random.PRNGKey(k), I, H) for k in (1, 2)]
  params[1]["b"] = jax.random.normal(jax.random.PRNGKey(3), (4 * H,))
  w_ih, w_hh, b_ih, b_hh = jax_rnn.unpack_lstm_weights(cudnn.pack(params), I, H, 1, True)
  for d, p in enumerate(params):
    np.testing.assert_array_equal(w_ih[d], p["w_x"].T)
    np.testing.assert_array_equal(w_hh[d], p["w_h"].T)
    np.testing.assert_array_equal(b_ih[d], p["b"])
    np.testing.assert_array_equal(b_hh[d], 0)
  assert cudnn.pack(params).size == jax_rnn.get_num_params_in_lstm(I, H, 1, True)


@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_one_direction_equals_scan(reference_gpu, time_major, reverse, lengths):
  cell = cells.get("lstm")
  params = cell.init(jax.random.PRNGKey(0), I, H)
  xs, carry = _inputs(time_major=time_major)
  lengths = None if lengths is None else jnp.asarray(lengths)

  def loss(backward, p, x, c):
    final, ys = scan.run(cell, p, x, initial_carry=c, lengths=lengths, reverse=reverse, time_major=time_major,
                         backward=backward)
    return jnp.sum(ys ** 2) + jnp.sum(jnp.sin(final.c)) + jnp.sum(final.h ** 3), (final, ys)

  grad = lambda backward: jax.jit(jax.value_and_grad(lambda *a: loss(backward, *a), argnums=(0, 1, 2),
                                                     has_aux=True))(params, xs, carry)
  got, want = grad("cudnn"), grad("autodiff")
  assert reference_gpu  # the cuDNN layer ran
  _assert_close(got, want)


@pytest.mark.parametrize("merge", ["concat", "sum"])
def test_bidirectional_stack_is_one_call_per_layer_and_equals_scan(reference_gpu, merge):
  cell = cells.get("lstm", forget_bias=0.5)
  params = scan.init_stack(jax.random.PRNGKey(0), cell, I, H, num_layers=2, bidirectional=True, merge=merge)
  xs, _ = _inputs()
  lengths = jnp.asarray(LENGTHS)

  def loss(backward, p, x):
    carries, ys = scan.run_stack(cell, p, x, lengths=lengths, bidirectional=True, merge=merge, backward=backward)
    return jnp.sum(ys ** 2) + sum(jnp.sum(c.h * c.c) for pair in carries for c in pair), (carries, ys)

  grad = lambda backward: jax.value_and_grad(lambda *a: loss(backward, *a), argnums=(0, 1), has_aux=True)(params, xs)
  got = grad("cudnn")
  assert reference_gpu == [True, True]  # one bidirectional call per layer
  _assert_close(got, grad("autodiff"))


def test_auto_takes_cudnn_where_it_pays(reference_gpu, monkeypatch):
  cell = cells.get("lstm")
  params = cell.init(jax.random.PRNGKey(0), I, H)
  xs, _ = _inputs()
  monkeypatch.setattr(policy, "cudnn_pays", lambda batch, hidden, steps: False)
  scan.run(cell, params, xs)
  assert not reference_gpu
  monkeypatch.setattr(policy, "cudnn_pays", lambda batch, hidden, steps: (batch, hidden, steps) == (B, H, T))
  scan.run(cell, params, xs)
  assert reference_gpu == [False]
  scan.run(cells.get("lstm", peepholes=True), cells.get("lstm", peepholes=True).init(jax.random.PRNGKey(0), I, H), xs)
  scan.run(cell, params, xs, remat=True)
  assert reference_gpu == [False]  # neither the peephole cell nor remat goes to cuDNN


@pytest.mark.parametrize("cell_options, remat, match", [
    ({"peepholes": True}, False, "no peepholes"),
    ({"layer_norm": True}, False, "layer norm"),
    ({"cell_clip": 3.0}, False, "cell clip"),
    ({"matmul_dtype": "bfloat16"}, False, "float32 only"),
    ({}, True, "no remat"),
])
def test_cells_cudnn_cannot_run_are_refused(reference_gpu, cell_options, remat, match):
  del reference_gpu
  cell = cells.get("lstm", **cell_options)
  params = cell.init(jax.random.PRNGKey(0), I, H)
  with pytest.raises(ValueError, match=match):
    scan.run(cell, params, _inputs()[0], backward="cudnn", remat=remat)


def test_other_cells_and_cpu_are_refused():
  gru = cells.get("gru")
  with pytest.raises(ValueError, match="only the plain LSTM, not cell 'gru'"):
    scan.run(gru, gru.init(jax.random.PRNGKey(0), I, H), _inputs()[0], backward="cudnn")
  if jax.default_backend() != "gpu":
    lstm = cells.get("lstm")
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
      scan.run(lstm, lstm.init(jax.random.PRNGKey(0), I, H), _inputs()[0], backward="cudnn")


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="the real cuDNN kernel needs a CUDA GPU")
def test_cudnn_on_gpu_equals_scan():
  cell = cells.get("lstm")
  params = scan.init_stack(jax.random.PRNGKey(0), cell, 16, 32, num_layers=2, bidirectional=True)
  xs = jax.random.normal(jax.random.PRNGKey(1), (4, 20, 16))
  lengths = jnp.asarray([20, 3, 11, 17])

  def loss(backward, p, x):
    carries, ys = scan.run_stack(cell, p, x, lengths=lengths, bidirectional=True, backward=backward)
    return jnp.sum(ys ** 2) + sum(jnp.sum(c.h * c.c) for pair in carries for c in pair), ys

  with jax.default_matmul_precision("highest"):  # no TF32 on either side
    grad = lambda backward: jax.jit(jax.value_and_grad(lambda *a: loss(backward, *a), argnums=(0, 1),
                                                       has_aux=True))(params, xs)
    got, want = grad("cudnn"), grad("autodiff")
  _assert_close(got, want, rtol=1e-4, atol=1e-4)
