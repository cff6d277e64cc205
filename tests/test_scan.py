"""The runner: hoisting, lengths, reverse, bidirectional, stacking, remat, carries, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import cells, scan
from tests.test_cells import ALL_CELLS, CELL_IDS

B, T, I, H = 3, 7, 4, 5
LENGTHS = np.array([7, 3, 5])


def _setup(name="lstm", options=None, seed=0, input_size=I):
  cell = cells.get(name, **(options or {}))
  params = cell.init(jax.random.PRNGKey(seed), input_size, H)
  xs = jax.random.normal(jax.random.PRNGKey(seed + 1), (B, T, input_size))
  return cell, params, xs


def _close(a, b, atol=1e-5, rtol=1e-5):
  """Leafwise float32 agreement; atol scales with each leaf's magnitude (IRNN values grow large)."""
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    scale = max(1.0, float(np.max(np.abs(v)))) if np.size(v) else 1.0
    np.testing.assert_allclose(u, v, atol=atol * scale, rtol=rtol)


@pytest.mark.parametrize("name,options", ALL_CELLS, ids=CELL_IDS)
def test_hoisted_equals_per_step(name, options):
  cell, params, xs = _setup(name, options)

  def loss(params, xs, hoist):
    carry, ys = scan.run(cell, params, xs, lengths=jnp.asarray(LENGTHS), hoist=hoist)
    return jnp.sum(ys * jnp.cos(ys)) + jnp.sum(cell.carry_hidden(carry)), (carry, ys)

  results = [jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, xs, hoist) for hoist in (True, False)]
  _close(results[0], results[1])


@pytest.mark.parametrize("name,options", ALL_CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("reverse", [False, True])
def test_padded_batch_equals_each_sequence_alone(name, options, reverse):
  cell, params, xs = _setup(name, options)
  # Garbage in the padding must not leak into anything.
  padded = jnp.where(jnp.arange(T)[None, :, None] < LENGTHS[:, None, None], xs, 1e3)
  carry, ys = scan.run(cell, params, padded, lengths=jnp.asarray(LENGTHS), reverse=reverse)
  for b, n in enumerate(LENGTHS):
    carry_b, ys_b = scan.run(cell, params, xs[b:b + 1, :n], reverse=reverse)
    np.testing.assert_allclose(ys[b, :n], ys_b[0], atol=1e-5)
    np.testing.assert_array_equal(ys[b, n:], 0.0)
    _close(jax.tree.map(lambda c: c[b], carry), jax.tree.map(lambda c: c[0], carry_b))


@pytest.mark.parametrize("merge", ["concat", "sum"])
def test_bidirectional_padded_equals_each_alone(merge):
  cell = cells.get("gru")
  params = {"forward": cell.init(jax.random.PRNGKey(0), I, H), "backward": cell.init(jax.random.PRNGKey(1), I, H)}
  xs = jax.random.normal(jax.random.PRNGKey(2), (B, T, I))
  (cf, cb), ys = scan.run_bidirectional(cell, params, xs, lengths=jnp.asarray(LENGTHS), merge=merge)
  assert ys.shape == (B, T, 2 * H if merge == "concat" else H)
  for b, n in enumerate(LENGTHS):
    x_b = xs[b:b + 1, :n]
    f_carry, f_ys = scan.run(cell, params["forward"], x_b)
    # The backward direction of a lone sequence = forward run over its time-reversal, flipped back.
    b_carry, b_ys = scan.run(cell, params["backward"], x_b[:, ::-1])
    b_ys = b_ys[:, ::-1]
    want = jnp.concatenate([f_ys, b_ys], -1) if merge == "concat" else f_ys + b_ys
    np.testing.assert_allclose(ys[b, :n], want[0], atol=1e-5)
    np.testing.assert_array_equal(ys[b, n:], 0.0)
    np.testing.assert_allclose(cf[b], f_carry[0], atol=1e-5)
    np.testing.assert_allclose(cb[b], b_carry[0], atol=1e-5)


def test_time_major_and_unroll_agree():
  cell, params, xs = _setup("lstm")
  carry, ys = scan.run(cell, params, xs, lengths=jnp.asarray(LENGTHS))
  carry_t, ys_t = scan.run(cell, params, jnp.swapaxes(xs, 0, 1), lengths=jnp.asarray(LENGTHS), time_major=True)
  carry_u, ys_u = scan.run(cell, params, xs, lengths=jnp.asarray(LENGTHS), unroll=3)
  _close((carry, ys), (carry_t, jnp.swapaxes(ys_t, 0, 1)))
  _close((carry, ys), (carry_u, ys_u))


def test_carry_in_and_out_splits_a_sequence_exactly():
  """Truncated BPTT: two halves with the carry passed on = one full run."""
  cell, params, xs = _setup("lstm")
  carry_full, ys_full = scan.run(cell, params, xs)
  carry_1, ys_1 = scan.run(cell, params, xs[:, :3])
  carry_2, ys_2 = scan.run(cell, params, xs[:, 3:], initial_carry=carry_1)
  _close(carry_full, carry_2)
  np.testing.assert_allclose(ys_full, jnp.concatenate([ys_1, ys_2], axis=1), atol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_stack_residual_remat_equals_no_remat(bidirectional):
  cell = cells.get("lstm")
  params = scan.init_stack(jax.random.PRNGKey(0), cell, I, H, num_layers=3, bidirectional=bidirectional,
                           merge="sum")
  xs = jax.random.normal(jax.random.PRNGKey(1), (B, T, I))
  rng = jax.random.PRNGKey(2)

  def loss(params, xs, remat):
    carries, ys = scan.run_stack(cell, params, xs, lengths=jnp.asarray(LENGTHS), bidirectional=bidirectional,
                                 merge="sum", residual=True, dropout_rate=0.3, dropout_rng=rng, remat=remat)
    return jnp.sum(jnp.tanh(ys)), (carries, ys)

  with_remat = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, xs, True)
  without = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, xs, False)
  _close(with_remat, without)
  ys = with_remat[0][1][1]
  assert ys.shape == (B, T, H)
  np.testing.assert_array_equal(ys[1, 3:], 0.0)  # padded outputs stay zero through residual connections


def test_stack_composes_layers_and_residual_adds_inputs():
  cell = cells.get("gru")
  params = scan.init_stack(jax.random.PRNGKey(0), cell, I, H, num_layers=2)
  xs = jax.random.normal(jax.random.PRNGKey(1), (B, T, I))
  carries, ys = scan.run_stack(cell, params, xs, residual=True)
  c0, y0 = scan.run(cell, params[0], xs)  # first layer changes width: no residual
  c1, y1 = scan.run(cell, params[1], y0)
  np.testing.assert_allclose(ys, y1 + y0, atol=1e-6)
  _close(carries, [c0, c1])
  zero = scan.initial_stack_carry(cell, params, (B,))
  assert jax.tree.structure(zero) == jax.tree.structure(carries)
  assert all(leaf.shape == (B, H) and not np.any(leaf) for leaf in jax.tree.leaves(zero))
  bidirectional = scan.init_stack(jax.random.PRNGKey(0), cells.get("lstm"), I, H, num_layers=2, bidirectional=True)
  zero = scan.initial_stack_carry(cells.get("lstm"), bidirectional, (B,))
  assert [len(pair) for pair in zero] == [2, 2] and all(not np.any(leaf) for leaf in jax.tree.leaves(zero))
  assert all(carry.c.shape == carry.h.shape == (B, H) for pair in zero for carry in pair)


def test_dropout_keeps_one_minus_rate_scaled_up_and_variational_masks_are_shared_over_time():
  x = jnp.ones((64, T, 32))
  for variational in (False, True):
    y = np.asarray(scan.dropout(jax.random.PRNGKey(0), 0.25, x, variational=variational))
    np.testing.assert_allclose(np.unique(y), [0.0, 4 / 3], rtol=1e-6)
    assert abs(np.mean(y > 0) - 0.75) < 0.03 and abs(np.mean(y) - 1.0) < 0.04  # inverted: the mean is kept
    assert np.all(y == y[:, :1]) == variational


def test_dropout_keeps_each_element_independently_at_the_requested_rate():
  size = 200_001  # odd: the last 32-bit word's second half is unused
  for rate in (0.1, 0.2, 0.5, 0.9):
    kept = np.asarray(scan.dropout(jax.random.PRNGKey(1), rate, jnp.ones((size,)))) > 0
    sigma = np.sqrt(rate * (1 - rate) / size)
    assert abs(kept.mean() - (1 - rate)) < 5 * sigma, rate
    # the two halves of one random word, and neighbouring words, are uncorrelated
    for a, b in ((kept[0:-1:2], kept[1::2]), (kept[0:-2:2], kept[2::2])):
      assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(len(a)), rate
  with pytest.raises(ValueError, match="dropout rate"):
    scan.dropout(jax.random.PRNGKey(0), 1.0, jnp.ones((4,)))


def test_stack_frames_concatenates_consecutive_steps_and_rounds_lengths_up():
  x = np.arange(2 * 7 * 3, dtype=np.float32).reshape(2, 7, 3)
  stacked, lengths = scan.stack_frames(jnp.asarray(x), jnp.asarray([7, 4]), 3)
  padded = np.concatenate([x, np.zeros((2, 2, 3), np.float32)], axis=1)
  want = np.stack([[np.concatenate(padded[b, 3 * t:3 * t + 3]) for t in range(3)] for b in range(2)])
  np.testing.assert_array_equal(stacked, want)
  assert lengths.tolist() == [3, 2]
  same, unchanged = scan.stack_frames(jnp.asarray(x), jnp.asarray([7, 4]), 1)
  np.testing.assert_array_equal(same, x)
  np.testing.assert_array_equal(unchanged, [7, 4])


def test_lengths_may_be_a_list_of_ints():
  cell, params, xs = _setup("gru")
  expected = scan.run_stack(cell, [params], xs, lengths=jnp.asarray(LENGTHS), residual=True)
  _close(scan.run_stack(cell, [params], xs, lengths=list(LENGTHS), residual=True), expected)


def test_jit_with_traced_lengths():
  cell, params, xs = _setup("gru")
  run = jax.jit(lambda p, x, n: scan.run(cell, p, x, lengths=n))
  carry, ys = run(params, xs, jnp.asarray(LENGTHS))
  carry_e, ys_e = scan.run(cell, params, xs, lengths=jnp.asarray(LENGTHS))
  _close((carry, ys), (carry_e, ys_e))


def test_bad_inputs_raise_clear_errors():
  cell, params, xs = _setup("lstm")
  with pytest.raises(ValueError, match=r"rank 3 \[B, T, I\], got shape \(7, 4\)"):
    scan.run(cell, params, xs[0])
  with pytest.raises(ValueError, match=r"input feature size 6 does not match the cell's input size 4"):
    scan.run(cell, params, jnp.zeros((B, T, 6)))
  with pytest.raises(ValueError, match=r"initial carry does not match cell 'lstm' for batch 3.*\(3, 5\).*\(2, 5\)"):
    scan.run(cell, params, xs, initial_carry=cell.initial_carry(params, (2,)))
  with pytest.raises(ValueError, match="initial carry does not match"):
    scan.run(cell, params, xs, initial_carry=jnp.zeros((B, H)))  # a GRU-style carry for an LSTM
  with pytest.raises(ValueError, match=r"lengths must lie in \[0, 7\].*max 9"):
    scan.run(cell, params, xs, lengths=jnp.array([9, 1, 1]))
  with pytest.raises(ValueError, match=r"lengths must have shape \(3,\)"):
    scan.run(cell, params, xs, lengths=jnp.array([1, 1]))
  with pytest.raises(ValueError, match="lengths must be integers, got dtype float32"):
    scan.run(cell, params, xs, lengths=jnp.array([2.5, 5.0, 1.0]))
  with pytest.raises(ValueError, match="merge must be one of"):
    scan.run_bidirectional(cell, {"forward": params, "backward": params}, xs, merge="avg")
  with pytest.raises(ValueError, match="merge must be one of"):
    scan.init_stack(jax.random.PRNGKey(0), cell, I, H, num_layers=2, bidirectional=True, merge="avg")
  with pytest.raises(ValueError, match="reverse is for one direction"):
    scan.run_stack(cell, [{"forward": params, "backward": params}], xs, bidirectional=True, reverse=True)
  with pytest.raises(ValueError, match="sequence of 1 layers' params: run a stack with run_stack"):
    scan.run(cell, [params], xs)
  with pytest.raises(ValueError, match="forward and a backward cell: run them with run_bidirectional"):
    scan.run(cell, {"forward": params, "backward": params}, xs)
  with pytest.raises(ValueError, match="'forward' and 'backward'"):
    scan.run_bidirectional(cell, params, xs)
  with pytest.raises(ValueError, match="needs a dropout_rng"):
    scan.run_stack(cell, [params], xs, dropout_rate=0.5)
  with pytest.raises(ValueError, match="expected a Cell"):
    scan.run("lstm", params, xs)
  gru_params = cells.get("gru").init(jax.random.PRNGKey(0), I, H)
  with pytest.raises(ValueError, match=r"params do not fit cell LSTM\(.*\); they look like a 'gru' cell's"):
    scan.run(cell, gru_params, xs)
  with pytest.raises(ValueError, match=r"params do not fit cell GRU\(.*\); they look like a 'lstm' cell's"):
    scan.run_stack(cells.get("gru"), [params], xs)
  with pytest.raises(ValueError, match=r"params do not fit cell LSTM\(.*peepholes=True.*\); they look like a 'lstm'"):
    scan.run(cells.get("lstm", peepholes=True), params, xs)


def test_errors_are_raised_at_trace_time_under_jit():
  cell, params, xs = _setup("lstm")
  with pytest.raises(ValueError, match="input feature size"):
    jax.jit(lambda x: scan.run(cell, params, x))(jnp.zeros((B, T, 2)))
