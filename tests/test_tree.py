"""Recursive networks: hand computation on a tiny tree, batching with padding, gradients, the data."""

import json
import os

import jax
from jax.test_util import check_grads
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import tree
from rnn_jax.data import expressions
from rnn_jax.data.trees import Trees
from tests.conftest import float64

# (3 + 5) * 2 in post-order: 3, 5, +, 2, *; operator indices: + = 0, * = 2.
TINY = Trees(tokens=jnp.array([[3, 5, 0, 2, 2]]), left=jnp.array([[-1, -1, 0, -1, 2]]),
             right=jnp.array([[-1, -1, 1, -1, 3]]), num_nodes=jnp.array([5]))
H = 4


def _sigmoid(x):
  return 1 / (1 + np.exp(-x))


def test_recursive_nn_on_a_tiny_tree_equals_hand_computation():
  composer = tree.RecursiveNN()
  params = composer.init(jax.random.key(0), 10, 3, H)
  params["b"] = 0.1 * jax.random.normal(jax.random.key(1), (3, H))
  root, nodes = tree.run(composer, params, TINY)
  e, w, b = (np.asarray(params[k], np.float64) for k in ("embed", "w", "b"))
  plus = np.tanh(np.concatenate([e[3], e[5]]) @ w[0] + b[0])
  expected_root = np.tanh(np.concatenate([plus, e[2]]) @ w[2] + b[2])
  np.testing.assert_allclose(root[0], expected_root, atol=1e-6)
  np.testing.assert_allclose(nodes[0], np.stack([e[3], e[5], plus, e[2], expected_root]), atol=1e-6)


def test_mlp_composition_on_a_tiny_tree_equals_hand_computation():
  composer = tree.RecursiveNN(hidden_layers=1)
  params = composer.init(jax.random.key(2), 10, 3, H)
  params["c"] = 0.1 * jnp.arange(H, dtype=jnp.float32)
  root, _ = tree.run(composer, params, TINY)
  e, w, b, v, c = (np.asarray(params[k], np.float64) for k in ("embed", "w", "b", "v", "c"))
  compose = lambda l, r, op: np.tanh(np.maximum(np.concatenate([l, r]) @ w[op] + b[op], 0) @ v + c)
  np.testing.assert_allclose(root[0], compose(compose(e[3], e[5], 0), e[2], 2), atol=1e-6)


def test_tree_lstm_on_a_tiny_tree_equals_hand_computation():
  composer = tree.TreeLSTM()
  params = composer.init(jax.random.key(3), 10, 3, H)
  root, _ = tree.run(composer, params, TINY)
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}

  def cell(x, left, right):
    z = x + left[1] @ p["u_l"] + right[1] @ p["u_r"] + p["b"]
    i, f_l, f_r, o, u = np.split(z, 5)
    c = _sigmoid(i) * np.tanh(u) + _sigmoid(f_l) * left[0] + _sigmoid(f_r) * right[0]
    return c, _sigmoid(o) * np.tanh(c)

  zero = (np.zeros(H), np.zeros(H))
  leaf = lambda token: cell(p["embed"][token], zero, zero)
  plus = cell(p["op_embed"][0], leaf(3), leaf(5))
  _, expected = cell(p["op_embed"][2], plus, leaf(2))
  np.testing.assert_allclose(root[0], expected, atol=1e-6)


@pytest.mark.parametrize("composer", [tree.RecursiveNN(), tree.TreeLSTM()], ids=["rvnn", "tree_lstm"])
def test_batched_padded_trees_match_one_at_a_time(composer):
  data = expressions.arithmetic_trees(0, 6, 1, 7)
  trees = jax.tree.map(jnp.asarray, data["trees"])
  params = composer.init(jax.random.key(4), 10, 3, H)
  roots, nodes = jax.jit(lambda p, t: tree.run(composer, p, t))(params, trees)
  for i in range(6):
    n = int(trees.num_nodes[i])
    alone = Trees(trees.tokens[i:i + 1, :n], trees.left[i:i + 1, :n], trees.right[i:i + 1, :n],
                  trees.num_nodes[i:i + 1])
    root_alone, _ = tree.run(composer, params, alone)
    np.testing.assert_allclose(roots[i], root_alone[0], atol=1e-6)
    assert np.all(np.asarray(nodes[i, n:]) == 0)


@pytest.mark.parametrize("composer", [tree.RecursiveNN(), tree.TreeLSTM()], ids=["rvnn", "tree_lstm"])
def test_gradients_through_the_tree_match_finite_differences(composer):
  with float64():
    params = jax.tree.map(lambda a: a.astype(jnp.float64), composer.init(jax.random.key(5), 10, 3, H))
    trees = jax.tree.map(jnp.asarray, expressions.arithmetic_trees(1, 3, 2, 5)["trees"])
    loss = lambda p: jnp.sum(jnp.sin(tree.run(composer, p, trees)[0]))
    check_grads(loss, (params,), order=1, modes=["rev"], atol=1e-7, rtol=1e-7)
    grads = jax.grad(loss)(params)
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(grads))  # every weight gets gradient


def _evaluate_infix(tokens):
  text = "".join("(" if t == expressions.OPEN else ")" if t == expressions.CLOSE
                 else expressions.OPS[t - 10] if t >= 10 else str(t) for t in tokens)
  return eval(text) % 10  # pylint: disable=eval-used


def test_arithmetic_trees_are_consistent():
  data = expressions.arithmetic_trees(3, 200, 1, 9)
  trees = data["trees"]
  for i in range(200):
    n, length = trees.num_nodes[i], data["sequence_length"][i]
    assert _evaluate_infix(data["sequence"][i, :length]) == data["labels"][i] == data["node_values"][i, n - 1]
    internal = trees.left[i, :n] >= 0
    assert np.all(trees.left[i, :n][internal] < np.arange(n)[internal])  # topological order
    assert np.all(trees.right[i, :n][internal] < np.arange(n)[internal])
    assert np.sum(internal) == n // 2  # a full binary tree
    assert data["sequence_targets"][i, length - 1] == data["labels"][i]
    assert np.sum(data["sequence_targets"][i] >= 0) == n  # one target per subexpression
  assert data["depth"].max() >= 4 and len(np.unique(data["labels"])) == 10


def _small_config(workdir_steps=400):
  from experiments.tree.configs import default  # pylint: disable=g-import-not-at-top
  c = default.get_config()
  c.models, c.num_steps, c.log_every, c.eval_every, c.checkpoint_every = ("rvnn_mlp",), workdir_steps, 100, 200, 200
  c.data.update(train_examples=2000, train_leaves=(2, 4), valid_examples=200, test_examples=500, test_max_leaves=6)
  c.model.tree_hidden = 32
  c.optimizer.learning_rate = 1e-2
  return c


def _files(directory) -> dict:
  return {str(path.relative_to(directory)): path.read_bytes() for path in directory.rglob("*") if path.is_file()}


def test_recursive_network_learns_small_expressions_and_a_rerun_recomputes_nothing(tmp_path, capsys):
  from experiments.tree import arithmetic  # pylint: disable=g-import-not-at-top
  results = arithmetic.run(_small_config(), str(tmp_path))
  (point,) = results["points"]
  assert point["model"] == "rvnn_mlp" and point["accuracy"] > 0.75  # chance is ~0.1-0.2; up to 6 digits (trained: 4)
  assert point["history"][-1]["valid_accuracy"] > 0.9
  assert {"config.json", "results.json", "results.md", "accuracy_vs_depth.png"} <= set(os.listdir(tmp_path))
  assert {"config.json", "metrics.jsonl", "tensorboard", "results.json"} <= set(os.listdir(tmp_path / "rvnn_mlp"))
  before = _files(tmp_path)
  capsys.readouterr()
  assert arithmetic.run(_small_config(), str(tmp_path)) == json.loads(before["results.json"])
  assert f"{tmp_path} holds a finished sweep" in capsys.readouterr().out
  assert _files(tmp_path) == before


def test_synthetic_train_step_is_the_experiments_loss_on_expressions_of_the_given_length():
  from experiments import tree as tree_experiment  # pylint: disable=g-import-not-at-top
  step = tree_experiment.synthetic_train_step(3, 5, variant="rvnn", tree_hidden=8)
  assert step.tokens == 3 * 9 and step.batch["trees"].num_nodes.tolist() == [9, 9, 9]
  loss, _ = step.loss_fn(step.state.params, step.state.model_state, step.batch, None, True)
  assert 0 < float(loss) < 10 and step.state.params["w_out"].shape == (8, 10)
