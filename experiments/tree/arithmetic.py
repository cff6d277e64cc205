"""Recursive networks vs sequential RNNs on arithmetic expressions mod 10: models, training, plot.

Each model reads one expression and predicts its value mod 10 from the root (tree
models: the root's state; sequential RNN: its final state after the fully parenthesised
infix tokens). With `supervise="all"` both kinds are also trained on the value of every
subexpression (tree nodes; for the RNN, the token that completes it), so they get the
same supervision; the test scores the root only. Launcher: experiments/tree/main.py.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnn_jax import cells, scan, train, tree
from rnn_jax.train import optim
from rnn_jax.data import expressions

MODELS = ("rvnn", "rvnn_mlp", "tree_lstm", "lstm")
COMPOSERS = {"rvnn": tree.RecursiveNN(), "rvnn_mlp": tree.RecursiveNN(hidden_layers=1), "tree_lstm": tree.TreeLSTM()}


def make_model(name: str, hidden_size: int):
  """`(init, logits)` for a tree model or a sequential RNN.

  `init(key) -> params`; `logits(params, batch) -> (root_Bx10, all_BxMx10, targets_BxM)`: the root's
  logits, and logits with targets for every subexpression (tree nodes, or the tokens that complete
  a subexpression; -1 marks positions without one).
  """
  if name in COMPOSERS:
    composer = COMPOSERS[name]

    def init(key):
      k_tree, k_out = jax.random.split(key)
      return {"tree": composer.init(k_tree, 10, len(expressions.OPS), hidden_size),
              "w_out": jax.random.normal(k_out, (hidden_size, 10)) / np.sqrt(hidden_size), "b_out": jnp.zeros((10,))}

    def logits(params, batch):
      root_BxH, nodes_BxNxH = tree.run(composer, params["tree"], batch["trees"])
      in_tree_BxN = jnp.arange(nodes_BxNxH.shape[1])[None, :] < batch["trees"].num_nodes[:, None]
      return (root_BxH @ params["w_out"] + params["b_out"][None],
              nodes_BxNxH @ params["w_out"] + params["b_out"][None, None],
              jnp.where(in_tree_BxN, batch["node_values"], -1))
    return init, logits

  cell = cells.get(name)

  def init(key):
    k_embed, k_cell, k_out = jax.random.split(key, 3)
    return {"embed": jax.random.normal(k_embed, (expressions.SEQUENCE_VOCAB, hidden_size)) / np.sqrt(hidden_size),
            "rnn": cell.init(k_cell, hidden_size, hidden_size),
            "w_out": jax.random.normal(k_out, (hidden_size, 10)) / np.sqrt(hidden_size), "b_out": jnp.zeros((10,))}

  def logits(params, batch):
    carry, ys_BxLxH = scan.run(cell, params["rnn"], params["embed"][batch["sequence"]],
                               lengths=batch["sequence_length"])
    return (cell.carry_hidden(carry) @ params["w_out"] + params["b_out"][None],
            ys_BxLxH @ params["w_out"] + params["b_out"][None, None], batch["sequence_targets"])
  return init, logits


def make_batch(data, index):
  """The examples `index` of `arithmetic_trees` output as a batch of device arrays."""
  return {"trees": jax.tree.map(lambda a: jnp.asarray(a[index]), data["trees"]),
          "sequence": jnp.asarray(data["sequence"][index]),
          "sequence_length": jnp.asarray(data["sequence_length"][index]), "labels": jnp.asarray(data["labels"][index]),
          "node_values": jnp.asarray(data["node_values"][index]),
          "sequence_targets": jnp.asarray(data["sequence_targets"][index])}


def loss(logits_fn, supervise: str, params, batch) -> jax.Array:
  """Mean cross-entropy of the root's value ("root") or of every subexpression's value ("all")."""
  root_Bx10, all_BxMx10, targets_BxM = logits_fn(params, batch)
  if supervise == "root":
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(root_Bx10, batch["labels"]))
  losses_BxM = optax.softmax_cross_entropy_with_integer_labels(all_BxMx10, jnp.maximum(targets_BxM, 0))
  return jnp.sum(jnp.where(targets_BxM >= 0, losses_BxM, 0)) / jnp.sum(targets_BxM >= 0)


def make_optimizer(learning_rate: float = 2e-3) -> optax.GradientTransformation:
  """Adam after clipping the global gradient norm to 1."""
  return train.make_optimizer(optim.default_config(learning_rate=learning_rate, clip_norm=1.0))


def train_and_test(name: str, train_data, test_data, *, hidden_size, steps, batch_size=64, learning_rate=2e-3,
                   supervise="all", seed=0) -> dict:
  """Trains `name` on `train_data`; returns root accuracy on `test_data` overall and per depth.

  supervise: "root" (the expression's value only) or "all" (every subexpression's value:
    each tree node, or each token that completes a subexpression in the sequence).
  """
  init, logits_fn = make_model(name, hidden_size)
  params = init(jax.random.key(seed))
  optimizer = make_optimizer(learning_rate)
  opt_state = optimizer.init(params)

  loss_fn = functools.partial(loss, logits_fn, supervise)

  @jax.jit
  def train_step(params, opt_state, batch):
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng, start = np.random.default_rng(seed), time.time()
  num_train = len(train_data["labels"])
  for _ in range(steps):
    batch = make_batch(train_data, rng.integers(num_train, size=batch_size))
    params, opt_state, _ = train_step(params, opt_state, batch)
  predict = jax.jit(lambda p, b: jnp.argmax(logits_fn(p, b)[0], axis=-1))
  num_test = len(test_data["labels"])
  predictions = np.concatenate([
      np.asarray(predict(params, make_batch(test_data, np.arange(i, min(i + 1000, num_test)))))
      for i in range(0, num_test, 1000)])
  correct = predictions == test_data["labels"]
  depths = test_data["depth"]
  return {"model": name, "hidden_size": hidden_size, "accuracy": float(correct.mean()),
          "num_params": sum(int(np.size(x)) for x in jax.tree.leaves(params)),
          "accuracy_by_depth": {int(d): float(correct[depths == d].mean()) for d in np.unique(depths)},
          "count_by_depth": {int(d): int(np.sum(depths == d)) for d in np.unique(depths)},
          "seconds": time.time() - start}


def plot(results, test_data, train_max_depth, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(7, 4.5))
  for r in results:
    points = sorted((int(d), a) for d, a in r["accuracy_by_depth"].items() if r["count_by_depth"][d] >= 20)
    ax.plot(*zip(*points), "o-", label=f"{r['model']} ({r['num_params']} params): {100 * r['accuracy']:.1f} %")
  majority = np.bincount(test_data["labels"]).max() / len(test_data["labels"])
  ax.axhline(majority, color="k", ls="--", lw=1, label="majority class")
  ax.axvline(train_max_depth + 0.5, color="gray", ls=":", lw=1, label="99th percentile of training depth")
  ax.set_xlabel("expression depth")
  ax.set_ylabel("test accuracy (value mod 10)")
  ax.set_ylim(0, 1.02)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
