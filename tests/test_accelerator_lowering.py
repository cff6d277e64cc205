"""The library and every experiment's train step lower for GPU (CUDA) and TPU.

CI has no accelerator, but `jax.export` lowers a function for another platform without one: what
fails here (an op without a lowering there, a CPU-only kernel) would fail there. The runner and
`rnn_jax.fused` choose their layout by `jax.default_backend()` at trace time, so each test names that
backend too, and clears JAX's trace caches around itself (a cached CPU trace would be reused).
Values on those branches are checked on CPU in test_fused.py (test_accelerator_layout_equals_autodiff).
"""

import functools

import jax
from jax import export
import jax.numpy as jnp
import pytest

from experiments.benchmark import experiment_steps
from experiments.translation import experiment
from experiments.translation.configs import numbers
from rnn_jax import cells, scan, train, tree
from rnn_jax.cells import reservoir
from rnn_jax.data import expressions
from tests.test_benchmark import synthetic_entries

BACKEND = {"cuda": "gpu", "tpu": "tpu"}


@pytest.fixture(params=sorted(BACKEND))
def platform(request, monkeypatch, fresh_traces):
  """Traces as on `request.param`'s backend (lowered by `_lower` for that platform)."""
  del fresh_traces
  monkeypatch.setattr(jax, "default_backend", lambda: BACKEND[request.param])
  return request.param


def _lower(fn, *args, platform: str) -> str:
  """The StableHLO text of `jax.jit(fn)(*args)` lowered for `platform`."""
  exported = export.export(jax.jit(fn), platforms=[platform])(*args)
  assert exported.platforms == (platform,)
  return exported.mlir_module()


CELL_OPTIONS = {"lstm": [{}, {"peepholes": True}, {"layer_norm": True}, {"matmul_dtype": "bfloat16"}],
                "gru": [{}, {"reset_after": False}, {"matmul_dtype": "bfloat16"}],
                "elman": [{}, {"activation": "relu"}], "rnn": [{}], "irnn": [{}], "clockwork": [{"periods": (1, 2)}],
                "reservoir": [{"connectivity": 0.5}],
                "lstmp": [{"proj_size": 3}, {"proj_size": 3, "matmul_dtype": "bfloat16"}]}


def test_every_registered_cell_is_covered():
  assert sorted(CELL_OPTIONS) == sorted(cells.names())


@pytest.mark.parametrize("name", sorted(CELL_OPTIONS))
def test_runner_gradients_lower(platform, name):
  # Two bidirectional layers over padded sequences, with and without remat: every runner path.
  xs, lengths = jnp.ones((3, 6, 4)), jnp.array([6, 2, 4])
  for options in CELL_OPTIONS[name]:
    cell = cells.get(name, **options)
    params = scan.init_stack(jax.random.PRNGKey(0), cell, 4, 8, num_layers=2, bidirectional=True)
    for remat in (False, True):
      loss = lambda p, x, cell=cell, remat=remat: jnp.sum(scan.run_stack(
          cell, p, x, lengths=lengths, bidirectional=True, remat=remat)[1] ** 2)
      text = _lower(jax.value_and_grad(loss, argnums=(0, 1)), params, xs, platform=platform)
      assert "stablehlo.while" in text  # the scans stay loops: compile time does not grow with T


@pytest.mark.parametrize("entry,overrides", [(entry, overrides) for entry, overrides in synthetic_entries()
                                             if entry != "language_modeling/zaremba_medium"])  # language_modeling's model
def test_every_experiment_train_step_lowers(platform, entry, overrides):
  step = experiment_steps.synthetic_step(entry, 2, 12, **overrides)
  train_step = functools.partial(train.train_step, step.loss_fn)
  _lower(train_step, step.state, step.batch, jax.random.PRNGKey(0), platform=platform)


def test_decoding_and_trees_lower(platform):
  config = numbers.get_config()
  config.model.update(encoder_size=8, decoder_size=8, embed_size=8)
  model = experiment.make_model(config, 20, 20)
  params = model.init(jax.random.PRNGKey(0))
  source, lengths = jnp.ones((2, 5), jnp.int32), jnp.array([5, 3])
  for beam_size in (1, 3):
    decode = functools.partial(experiment.decode_batch, model, beam_size=beam_size, alpha=0.6, max_ratio=2.0,
                               max_offset=2, max_length=8)
    _lower(decode, params, source, lengths, platform=platform)
  composer = tree.TreeLSTM()
  trees = jax.tree.map(jnp.asarray, expressions.arithmetic_trees(0, 2, 2, 4)["trees"])
  tree_params = composer.init(jax.random.PRNGKey(0), 10, len(expressions.OPS), 8)
  _lower(jax.grad(lambda p: jnp.sum(tree.run(composer, p, trees)[0])), tree_params, platform=platform)


def test_reservoir_readout_lowers_without_cpu_kernels(platform):
  # The closed-form readout solves a linear system: on CPU that is a LAPACK custom call, which
  # must not appear in a GPU or TPU module.
  cell = reservoir.Reservoir(spectral_radius=0.9, connectivity=0.2, feedback_size=1)
  params = cell.init(jax.random.PRNGKey(0), 1, 16)

  def fit(params, targets_1xTx1):
    _, states = reservoir.teacher_forced_states(cell, params, targets_1xTx1)
    return reservoir.fit_readout(reservoir.features(states), targets_1xTx1, 1e-6)

  targets = jnp.sin(jnp.arange(40.0))[None, :, None]
  assert "lapack" not in _lower(fit, params, targets, platform=platform)
  assert "lapack" in export.export(jax.jit(fit), platforms=["cpu"])(params, targets).mlir_module()
