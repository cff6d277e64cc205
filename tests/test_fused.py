"""The hand-written VJPs of rnn_jax.fused against autodiff of the runner's scan."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rnn_jax import cells, fused, scan
from rnn_jax.fused import kernel, policy
from tests.conftest import clear_traces, float64

B, T, I, H = 3, 7, 4, 5
LENGTHS = np.array([7, 3, 5])
FUSED_CELLS = [("lstm", {}), ("lstm", {"peepholes": True}), ("lstm", {"cell_clip": 0.3, "peepholes": True}), ("gru", {}), ("gru", {"reset_after": False}), ("elman", {}),
               ("elman", {"activation": "relu"})]
FUSED_IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in o.items()) or 'default'}" for n, o in FUSED_CELLS]
# One cell per kernel path (peepholes and clipping together; the activation's slope is per step), for the tests of
# what the layer does around the steps: the steps' own options are each checked against autodiff above them.
KERNEL_PATHS = [("lstm", {}), ("lstm", {"cell_clip": 0.3, "peepholes": True}), ("gru", {}), ("gru", {"reset_after": False}),
                ("elman", {})]
KERNEL_IDS = [FUSED_IDS[FUSED_CELLS.index(cell)] for cell in KERNEL_PATHS]


def _setup(name, options, seed=0, dtype=jnp.float32, batch=B, steps=T):
  """`(cell, params, xs_BxTxI, carry)`."""
  cell = cells.get(name, **options)
  params = jax.tree.map(lambda a: a.astype(dtype), cell.init(jax.random.PRNGKey(seed), I, H))
  xs = jax.random.normal(jax.random.PRNGKey(seed + 1), (batch, steps, I), dtype)
  # A non-zero initial carry, so that its gradient and the padded pass-through are exercised.
  carry = jax.tree.map(lambda c: 0.5 * jnp.tanh(jax.random.normal(jax.random.PRNGKey(seed + 2), c.shape, dtype)),
                       cell.initial_carry(params, (batch,)))
  return cell, params, xs, carry


def _loss(cell, backward, **options):
  def loss(params, xs, carry, lengths=None):
    final, ys = scan.run(cell, params, xs, initial_carry=carry, lengths=lengths, backward=backward, hoist=True,
                         **options)
    # Weights that differ per step and unit, so that every output's cotangent differs.
    w = jnp.cos(jnp.arange(ys.size, dtype=ys.dtype)).reshape(ys.shape)
    return jnp.sum(w * jnp.tanh(ys)) + sum(jnp.sum(jnp.sin(c)) for c in jax.tree.leaves(final)), (final, ys)
  return loss


def _assert_close(a, b, atol=1e-5, rtol=1e-5):
  chex.assert_trees_all_equal_structs(a, b)
  chex.assert_trees_all_close(a, b, atol=atol, rtol=rtol)


@pytest.mark.parametrize("name,options", FUSED_CELLS, ids=FUSED_IDS)
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_values_and_gradients_equal_autodiff(name, options, masked, reverse, wrap=jax.jit):
  cell, params, xs, carry = _setup(name, options)
  lengths = jnp.asarray(LENGTHS) if masked else None
  grad = lambda backward: wrap(jax.value_and_grad(_loss(cell, backward, reverse=reverse), argnums=(0, 1, 2),
                                                  has_aux=True))
  (loss_f, aux_f), grads_f = grad("fused")(params, xs, carry, lengths)
  (loss_a, aux_a), grads_a = grad("autodiff")(params, xs, carry, lengths)
  _assert_close((loss_f, aux_f), (loss_a, aux_a))
  _assert_close(grads_f, grads_a)
  if masked:  # nothing flows into or out of the padding
    for b, n in enumerate(LENGTHS):
      np.testing.assert_array_equal(aux_f[1][b, n:], 0.0)
      np.testing.assert_array_equal(grads_f[1][b, n:], 0.0)


@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_undifferentiated_calls_equal_autodiff(masked, reverse):
  # Undifferentiated, the LSTM runs the runner's per-step scan (policy.per_step_forward_pays), the
  # others the hoisted kernel: the values are those of autodiff's scan either way.
  assert policy.per_step_forward_pays(cells.get("lstm"), B, H)
  assert not policy.per_step_forward_pays(cells.get("gru"), B, H)
  lengths = jnp.asarray(LENGTHS) if masked else None
  for name, options in KERNEL_PATHS:
    cell, params, xs, carry = _setup(name, options)
    run = lambda backward, hoist=None: jax.jit(lambda p, x, c: scan.run(
        cell, p, x, initial_carry=c, lengths=lengths, reverse=reverse, backward=backward, hoist=hoist))(
            params, xs, carry)
    _assert_close(run("auto"), run("autodiff", hoist=True))
    _assert_close(run("fused", hoist=True), run("autodiff", hoist=True))


def _num_dots(fn, *args) -> int:
  clear_traces()
  return str(jax.make_jaxpr(fn)(*args)).count("dot_general")


def test_large_batches_take_one_recurrent_product_on_cpu():
  """From B=128 (at H < 512) the CPU step computes `h W_h` as one product whose columns the gate math
  reads, and the undifferentiated LSTM keeps the hoisted forward; values and gradients equal autodiff's."""
  assert policy.one_recurrent_product_pays(128, 256) and not policy.one_recurrent_product_pays(32, 256)
  assert not policy.one_recurrent_product_pays(128, 512)
  assert not policy.per_step_forward_pays(cells.get("lstm"), 128, H)
  large = 128
  lengths = jnp.asarray(np.arange(large) % T + 1)
  for name, options in KERNEL_PATHS:
    cell, params, xs, carry = _setup(name, options, batch=large)
    loss = lambda p, x, cell=cell: _loss(cell, "fused")(p, x, None)[0]
    fewer = {"lstm": 3, "gru": 2 if options.get("reset_after", True) else 1, "elman": 0}[name]  # per step
    assert _num_dots(jax.grad(loss), params, xs[:B]) - _num_dots(jax.grad(loss), params, xs) == fewer, name
    grad = lambda backward, cell=cell, carry=carry: jax.jit(jax.value_and_grad(
        _loss(cell, backward, reverse=True), argnums=(0, 1, 2), has_aux=True))(params, xs, carry, lengths)
    _assert_close(grad("fused"), grad("autodiff"))
    forward = lambda backward, cell=cell, carry=carry: jax.jit(lambda p, x: scan.run(
        cell, p, x, initial_carry=carry, backward=backward))(params, xs)
    _assert_close(forward("auto"), forward("autodiff"))


def test_accelerator_layout_equals_autodiff(monkeypatch, fresh_traces):
  # GPU/TPU take other branches (one recurrent matmul split into gates, hoisting everywhere, no
  # per-step primal); CI has no accelerator, so run those branches on CPU by naming another backend.
  del fresh_traces
  cell, params, xs, carry = _setup("lstm", {})
  fused_grad = jax.grad(lambda p: _loss(cell, "fused")(p, xs, carry)[0])
  cpu_dots = _num_dots(fused_grad, params)
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert _num_dots(fused_grad, params) < cpu_dots  # the accelerator branch is the one traced below
  assert policy.hoist_by_default(H)
  lengths = jnp.asarray(LENGTHS)
  for name, options in KERNEL_PATHS:
    cell, params, xs, carry = _setup(name, options)
    grad = lambda backward, remat=False, cell=cell: jax.jit(jax.value_and_grad(
        _loss(cell, backward, reverse=True, remat=remat), argnums=(0, 1, 2), has_aux=True))(params, xs, carry, lengths)
    _assert_close(grad("auto"), grad("autodiff"))
    _assert_close(grad("auto", remat=True), grad("autodiff"))
    forward = lambda backward, cell=cell: jax.jit(lambda p, x: scan.run(cell, p, x, backward=backward))(params, xs)
    _assert_close(forward("auto"), forward("autodiff"))


@pytest.fixture
def transposed_recurrence(monkeypatch, fresh_traces):
  """The CPU's transposed recurrent products (`W_h^T h^T` forward, `W_h dz^T` backward; taken at
  H >= 1024) at this test's small H."""
  del fresh_traces
  monkeypatch.setattr(policy, "transposed_recurrence_pays", lambda hidden, backend=None: True)


def _loops_with_transposed_product(jaxpr, loop=None) -> set:
  """The `reverse` flags of the scans (at any depth) in which some dot_general contracts dimension 1
  of both operands; `loop` for one outside any scan."""
  found = set()
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "dot_general" and eqn.params["dimension_numbers"] == (((1,), (1,)), ((), ())):
      found.add(loop)
    inner = eqn.params["reverse"] if eqn.primitive.name == "scan" else loop
    for sub in _sub_jaxprs(eqn):
      found |= _loops_with_transposed_product(sub, inner)
  return found


def _sub_jaxprs(eqn):
  """The jaxprs an equation calls (a scan's body, a pjit's or custom_vjp's function, ...)."""
  for value in eqn.params.values():
    for sub in value if isinstance(value, (tuple, list)) else (value,):
      sub = sub if hasattr(sub, "eqns") else getattr(sub, "jaxpr", None)  # a Jaxpr, or a ClosedJaxpr's
      if hasattr(sub, "eqns"):
        yield sub


@pytest.mark.parametrize("matmul_dtype", [None, "bfloat16"])
def test_transposed_recurrent_product_equals_autodiff(transposed_recurrence, matmul_dtype):
  del transposed_recurrence
  lengths = jnp.asarray(LENGTHS)
  tolerance = 1e-5 if matmul_dtype is None else 2e-2
  for name, options in KERNEL_PATHS:
    cell, params, xs, carry = _setup(name, {**options, "matmul_dtype": matmul_dtype})
    grad = lambda backward, remat=False, cell=cell: jax.value_and_grad(
        _loss(cell, backward, reverse=True, remat=remat), argnums=(0, 1, 2), has_aux=True)
    # The forward runs reversed here, the backward loop forward: both take the transposed product.
    assert _loops_with_transposed_product(jax.make_jaxpr(grad("fused"))(params, xs, carry, lengths).jaxpr) == {
        True, False}, name
    expected = jax.jit(grad("autodiff"))(params, xs, carry, lengths)
    for remat in (False, True):
      _assert_close(jax.jit(grad("fused", remat))(params, xs, carry, lengths), expected, atol=tolerance,
                    rtol=tolerance)
    # Forward in time, no lengths.
    grad = lambda backward, cell=cell: jax.jit(jax.value_and_grad(_loss(cell, backward), argnums=(0, 1, 2),
                                                                  has_aux=True))(params, xs, carry)
    _assert_close(grad("fused"), grad("autodiff"), atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("name,options", KERNEL_PATHS, ids=KERNEL_IDS)
@pytest.mark.parametrize("steps,masked,reverse", [(16, False, False), (17, True, True), (17, False, True)],
                         ids=["4x4", "padded-lengths-reverse", "padded-reverse"])
def test_remat_in_chunks_equals_autodiff(name, options, steps, masked, reverse):
  # remat runs the layer in checkpointed chunks; 17 steps have no divisor near sqrt(17), so the
  # last chunk is padded (and a reverse run must skip the padding).
  assert fused.remat_chunks(16) == (4, 4) and fused.remat_chunks(17) == (5, 4)
  cell, params, xs, carry = _setup(name, options, steps=steps)
  lengths = jnp.array([steps, 9, 4]) if masked else None
  grad = lambda backward, remat: jax.jit(jax.value_and_grad(
      _loss(cell, backward, reverse=reverse, remat=remat), argnums=(0, 1, 2), has_aux=True))(params, xs, carry, lengths)
  _assert_close(grad("fused", True), grad("autodiff", False))
  # Undifferentiated (the LSTM's per-step forward inside each chunk), the same values.
  forward = lambda remat, backward: jax.jit(lambda p, x, c: scan.run(
      cell, p, x, initial_carry=c, lengths=lengths, reverse=reverse, backward=backward, remat=remat))(params, xs, carry)
  _assert_close(forward(True, "auto"), forward(False, "autodiff"))
  # Residuals are kept for one chunk at a time: the plan for the gradient shrinks.
  memory = lambda remat: jax.jit(jax.grad(lambda p: _loss(cell, "fused", reverse=reverse, remat=remat)(
      p, xs, carry, lengths)[0])).lower(params).compile().memory_analysis().temp_size_in_bytes
  if name != "elman":  # Elman stores nothing but its outputs
    assert memory(True) < memory(False)


@pytest.mark.parametrize("remat", [False, True])
def test_empty_sequences_pass_the_carry_through(remat):
  cell, params, xs, carry = _setup("lstm", {}, steps=0)
  grad = lambda backward: jax.value_and_grad(_loss(cell, backward, remat=remat), argnums=(0, 2), has_aux=True)(
      params, xs, carry)
  (_, (final, ys)), _ = result = grad("fused")
  assert ys.shape == (B, 0, H)
  _assert_close(final, carry)
  _assert_close(result, grad("autodiff"))


def test_remat_chunks_cover_the_steps():
  for steps in (1, 2, 7, 17, 100, 997, 1000, 10_000):
    number, size = fused.remat_chunks(steps)
    assert 0 <= number * size - steps < number
    assert number <= 2 * math.isqrt(steps) + 2 and size <= 2 * math.isqrt(steps) + 1
  assert fused.remat_chunks(10_000) == (100, 100) and fused.remat_chunks(1000)[0] * fused.remat_chunks(1000)[1] == 1000
  assert fused.remat_chunks(0) == (0, 1)  # an empty sequence: no chunks


def test_equal_autodiff_without_jit():
  test_values_and_gradients_equal_autodiff("lstm", {}, masked=True, reverse=True, wrap=lambda f: f)


@pytest.mark.parametrize("name,options", FUSED_CELLS, ids=FUSED_IDS)
def test_finite_difference_gradients_float64(name, options):
  with float64():
    cell, params, xs, carry = _setup(name, options, dtype=jnp.float64)
    loss, lengths = _loss(cell, "fused", reverse=True), jnp.array([T, 2, 4])
    check_grads(lambda p, x, c: loss(p, x, c, lengths)[0], (params, xs, carry), order=1, modes=["rev"],
                atol=1e-6, rtol=1e-6, eps=1e-6)


def test_stack_and_bidirectional_equal_autodiff():
  cell = cells.get("lstm")
  params = scan.init_stack(jax.random.PRNGKey(0), cell, I, H, num_layers=2, bidirectional=True)
  xs = jax.random.normal(jax.random.PRNGKey(1), (B, T, I))

  def loss(params, xs, backward):
    _, ys = scan.run_stack(cell, params, xs, lengths=jnp.asarray(LENGTHS), bidirectional=True, backward=backward)
    return jnp.sum(jnp.sin(ys))

  results = [jax.value_and_grad(loss, argnums=(0, 1))(params, xs, b) for b in ("fused", "autodiff")]
  _assert_close(results[0], results[1])


def test_auto_takes_fused_only_where_supported():
  lstm, layer_norm = cells.get("lstm"), cells.get("lstm", layer_norm=True)
  assert fused.unsupported_reason(lstm) is None and fused.unsupported_reason(cells.get("lstm", peepholes=True)) is None
  assert "layer norm" in fused.unsupported_reason(layer_norm)
  assert fused.unsupported_reason(cells.get("gru", reset_after=False)) is None

  class Custom(type(lstm)):  # a subclass may change recur: never taken for a plain LSTM
    pass
  assert "Custom" in fused.unsupported_reason(Custom())

  # "auto" with an unsupported option gives exactly the autodiff result.
  cell, params, xs, carry = _setup("lstm", {"layer_norm": True})
  grad = lambda b: jax.grad(lambda p: _loss(cell, b)(p, xs, carry)[0])(params)
  _assert_close(grad("auto"), grad("autodiff"), atol=0, rtol=0)


def test_a_cell_opts_in_by_registering_its_kernel(monkeypatch, fresh_traces):
  del fresh_traces
  elman = cells.get("elman")

  class Renamed(type(elman)):  # the same recurrence under another class: no kernel until it registers one
    pass
  cell = Renamed()
  assert "Renamed" in fused.unsupported_reason(cell)
  monkeypatch.setitem(kernel._KERNELS, Renamed, fused.elman.family)  # pylint: disable=protected-access
  assert fused.unsupported_reason(cell) is None
  params = cell.init(jax.random.PRNGKey(0), I, H)
  xs, carry = jax.random.normal(jax.random.PRNGKey(1), (B, T, I)), jnp.zeros((B, H))
  grad = lambda b: jax.grad(lambda p: _loss(cell, b)(p, xs, carry)[0])(params)
  _assert_close(grad("fused"), grad("autodiff"))


def test_fused_refusals_name_the_reason():
  cell, params, xs, _ = _setup("lstm", {"layer_norm": True})
  with pytest.raises(ValueError, match="fused.*layer norm"):
    scan.run(cell, params, xs, backward="fused")
  cell, params, xs, _ = _setup("lstm", {})
  with pytest.raises(ValueError, match="hoist"):
    scan.run(cell, params, xs, backward="fused", hoist=False)
  with pytest.raises(ValueError, match="backward must be one of"):
    scan.run(cell, params, xs, backward="manual")


def test_bfloat16_runs_in_bfloat16_and_tracks_float32():
  cell, params, xs, carry = _setup("lstm", {})
  lowp = jax.tree.map(lambda a: a.astype(jnp.bfloat16), (params, xs, carry))
  (_, (_, ys16)), grads16 = jax.value_and_grad(_loss(cell, "fused"), argnums=(0, 1), has_aux=True)(*lowp)
  (_, (_, ys32)), grads32 = jax.value_and_grad(_loss(cell, "fused"), argnums=(0, 1), has_aux=True)(params, xs, carry)
  assert ys16.dtype == jnp.bfloat16 and grads16[0]["w_h"].dtype == jnp.bfloat16
  _assert_close(ys16, ys32, atol=1e-2, rtol=1e-2)  # bfloat16 keeps 8 bits: relative steps of 2^-8 = 0.4 %
  _assert_close(grads16, grads32, atol=4e-2, rtol=4e-2)


def test_bfloat16_params_and_inputs_with_a_float32_carry_equal_autodiff():
  """LSTM gates computed in float32 from bfloat16 projections cannot overwrite them (scan outputs
  instead), and the extra params' per-step gradients (GRU `b_hn`, peepholes) are summed in float32."""
  for name, options in KERNEL_PATHS:
    cell, params, xs, carry = _setup(name, options)
    params, xs = jax.tree.map(lambda a: a.astype(jnp.bfloat16), (params, xs))
    grad = lambda backward, cell=cell: jax.jit(jax.value_and_grad(_loss(cell, backward), argnums=(0, 1, 2),
                                                                  has_aux=True))(params, xs, carry)
    (_, (_, ys)), grads = grad("fused")
    assert ys.dtype == jnp.float32 and grads[0]["w_h"].dtype == jnp.bfloat16, name
    _assert_close(grad("fused"), grad("autodiff"), atol=2e-2, rtol=2e-2)


def _carried_stacks(jaxpr, shape) -> list:
  """`(reverse, n)` for every scan (at any depth): `n` of its loop-carried arrays have `shape`, a stack's
  (what a step returns of that shape can only be carry: its per-step outputs lack the time axis)."""
  found = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "scan":
      body = eqn.params["jaxpr"].jaxpr
      found.append((eqn.params["reverse"], sum(tuple(v.aval.shape) == shape for v in body.outvars)))
    for sub in _sub_jaxprs(eqn):
      found += _carried_stacks(sub, shape)
  return found


WIDE = 16384 // H + 1  # a batch with B*H >= 16384, from which the GRU's gates overwrite too


@pytest.mark.parametrize("name,options,batch,overwritten", [
    ("lstm", {}, B, 4), ("lstm", {"peepholes": True}, B, 4), ("gru", {}, B, 0), ("gru", {}, WIDE, 3),
    ("gru", {"reset_after": False}, B, 0), ("gru", {"reset_after": False}, WIDE, 3), ("elman", {}, WIDE, 0)])
def test_gates_overwrite_their_projection_in_the_differentiated_forward(name, options, batch, overwritten):
  """The forward loop carries each gate's `[T, B, H]` projection and writes the gate's activations
  over it (no zero-filled output stack) for the LSTM, and for the GRU from B*H = 16384
  (`policy.gates_overwrite_projections_pays`); otherwise the gates are scan outputs. Values and
  gradients equal autodiff's either way; an undifferentiated call stores no gates at all."""
  cell, params, xs, carry = _setup(name, options, batch=batch)
  xs_TxBxI = jnp.swapaxes(xs, 0, 1)
  run = lambda p, x: fused.run(cell, p, x, carry)[1]
  loss = lambda p, x: jnp.sum(jnp.sin(run(p, x)))
  # The forward loop runs forward in time, the backward loop in reverse.
  assert sorted(_carried_stacks(jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(params, xs_TxBxI).jaxpr,
                                (T, batch, H))) == [(False, overwritten), (True, 0)]
  grad = lambda backward: jax.jit(jax.value_and_grad(_loss(cell, backward), argnums=(0, 1, 2), has_aux=True))(
      params, xs, carry)
  tolerance = 1e-5 if batch == B else 2e-4  # float32 sums over T*WIDE rows of terms up to ~100
  _assert_close(grad("fused"), grad("autodiff"), atol=tolerance, rtol=tolerance)
  assert _carried_stacks(jax.make_jaxpr(run)(params, xs_TxBxI).jaxpr, (T, batch, H)) == [(False, 0)]
