"""The data x model mesh on 4 simulated CPU devices: the lm1b_large LSTMP LM (at a reduced size) trains on a 2x2
mesh with the losses of one device, holds half of every model-split matrix per device, and its 2x2 checkpoint
resumes on one device; the config's memory figures follow from the placement rules at full size, and the mesh
benchmark reads XLA's per-device memory."""

import json
import os
import re
import subprocess
import sys
import textwrap

import jax
import ml_collections
import numpy as np
import pytest

from experiments.language_modeling.configs import lm1b_large
from rnn_jax import train
from rnn_jax.train import mesh

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SCRIPT = """
import json, os, sys
sys.path.insert(0, {repo!r})
import jax, numpy as np
from jax.sharding import PartitionSpec as P
assert jax.device_count() == 4, jax.devices()
from rnn_jax import train
from experiments.language_modeling import lm
from experiments.language_modeling.configs import lm1b_large

def config(data, model, steps):
  c = lm1b_large.get_config()
  c.data.update(path={corpus!r}, max_vocab=16, batch_size=4, eval_batch_size=2, bptt=8)
  c.model.update(hidden_size=16, proj_size=8, embed_size=8, dropout=0.1)
  c.mesh.update(data=data, model=model)
  c.update(num_steps=steps, log_every=1, checkpoint_every=2, eval_every=2, eval_splits=("valid",))
  return c

def run(name, data, model, steps):
  workdir = os.path.join({tmp!r}, name)
  c = config(data, model, steps)
  task, *_ = lm.build(c, workdir)
  return train.train_loop(task, c, workdir), [m for m in train.read_metrics(workdir)]

out = {{}}
_, out["one"] = run("one", 1, 1, 4)
state, out["mesh"] = run("mesh", 2, 2, 2)
shards = lambda x: [list(s.data.shape) for s in x.addressable_shards]
out["params"] = {{jax.tree_util.keystr(k): [list(v.shape), shards(v)]
                  for k, v in jax.tree_util.tree_flatten_with_path(state.params)[0]}}
out["mu"] = shards(state.opt_state[1][0].mu["rnn"][0]["w_x"])
out["carry"] = shards(state.model_state[0].c)
_, out["resumed"] = run("mesh", 1, 1, 4)

from experiments.benchmark import mesh as bench
from experiments.language_modeling.model import LanguageModel
model = LanguageModel(vocab_size=64, cell="lstmp", hidden_size=32, num_layers=1, embed_size=16, proj_size=16)
tokens = np.zeros((8, 5), np.int32)
batch = {{"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "reset": np.ones((8,), bool)}}
out["bench"] = {{f"{{d}}x{{m}}": bench.memory_row(bench.mesh_step(model, d, m, batch)[1]) for d, m in ((4, 1), (1, 4))}}
print(json.dumps(out))
"""


def _losses(metrics, key="loss"):
  return {m["step"]: m[key] for m in metrics if key in m}


def test_a_2x2_mesh_trains_as_one_device_holds_half_of_each_matrix_and_resumes_on_one(tmp_path):
  words = np.random.default_rng(0).integers(0, 30, 3000)
  corpus = tmp_path / "corpus.txt"
  corpus.write_text("\n".join(" ".join(f"w{w}" for w in line) for line in words.reshape(-1, 12)))
  script = textwrap.dedent(_SCRIPT.format(repo=REPO, corpus=str(corpus), tmp=str(tmp_path)))
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
  result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])

  one, on_mesh, resumed = _losses(out["one"]), _losses(out["mesh"]), _losses(out["resumed"])
  np.testing.assert_allclose([on_mesh[s] for s in (1, 2)], [one[s] for s in (1, 2)], rtol=1e-5)
  np.testing.assert_allclose([resumed[s] for s in (3, 4)], [one[s] for s in (3, 4)], rtol=1e-5)
  valid = lambda metrics: _losses(metrics, "valid_loss")
  np.testing.assert_allclose(valid(out["mesh"])[2], valid(out["one"])[2], rtol=1e-5)
  np.testing.assert_allclose(valid(out["resumed"])[4], valid(out["one"])[4], rtol=1e-5)

  # Every device holds half of each matrix along the axis the rules send to "model" (V=16, E=P=8, H=16).
  split_axis = {"['embed']": 0, "['out_w']": 1, "['out_b']": 0, "['rnn'][0]['w_x']": 1, "['rnn'][0]['w_h']": 1,
                "['rnn'][0]['b']": 0, "['rnn'][0]['w_p']": 0, "['rnn'][1]['w_x']": 1}
  for name, axis in split_axis.items():
    shape, shards = out["params"][name]
    half = list(shape)
    half[axis] //= 2
    assert shards == [half] * 4, (name, shape, shards)
  assert out["params"]["['rnn'][0]['w_x']"][0] == [8, 64]
  assert out["mu"] == [[8, 32]] * 4               # Adam's moments are split as their params
  assert out["carry"] == [[2, 16]] * 4            # the TBPTT carries as the batch, over "data"

  # The mesh benchmark's per-device arguments (XLA's figure): 1x4 holds a quarter of the state 4x1 holds whole.
  state_mib = 3 * 4 * (64 * 16 + 16 * 128 + 16 * 128 + 128 + 32 * 16 + 16 * 64 + 64) / 2**20  # params, Adam's two
  replicated, split = out["bench"]["4x1"]["arguments_mib"], out["bench"]["1x4"]["arguments_mib"]
  assert state_mib < replicated < 1.1 * state_mib and state_mib / 4 < split < 0.3 * state_mib


def test_lm1b_large_memory_figures_follow_from_the_placement_rules():
  """The docstring's parameter count, and its train-state GiB per device at model=1, 2, 4, 8 (params, gradients
  and Adam's two moments: 16 B per parameter), from the shard shapes the rules give the full-size state."""
  config = lm1b_large.get_config()
  from experiments.language_modeling import lm  # pylint: disable=g-import-not-at-top
  model = lm.make_model(config, config.data.max_vocab)
  optimizer = train.make_optimizer(config.optimizer)
  abstract = jax.eval_shape(lambda key: train.create_train_state(model.init(key), optimizer), jax.random.PRNGKey(0))
  count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abstract.params))
  assert f"{count:,} parameters" in " ".join(lm1b_large.__doc__.split())
  for model_axis in (1, 2, 4, 8):
    layout = mesh.Layout(jax.sharding.AbstractMesh((1, model_axis), ("data", "model")))  # shapes only
    shardings = layout.state_shardings(abstract, model.param_axes)
    param_bytes = sum(4 * np.prod(s.shard_shape(x.shape))
                      for x, s in zip(jax.tree.leaves(abstract.params), jax.tree.leaves(shardings.params)))
    assert f"{16 * param_bytes / 4 / 2**30:.1f} GiB at model={model_axis}" in lm1b_large.__doc__


def test_a_mesh_that_does_not_fit_the_devices_is_named():
  with pytest.raises(ValueError, match=r"config.mesh data=2 x model=2 needs 4 devices, 1 are available"):
    mesh.Layout.create(data=2, model=2)
  with pytest.raises(ValueError, match=r"config.mesh.model=2 does not divide the 1 devices"):
    config = ml_collections.ConfigDict({"mesh": mesh.config()})
    config.mesh.model = 2
    mesh.Layout.from_config(config)
