r"""Recursive networks vs a sequential LSTM on arithmetic expressions mod 10.

  python -m experiments.tree.main --out_dir=runs/tree

Each model reads one expression and predicts its value mod 10 from the root (tree
models: the root's state; LSTM: its final state after the fully parenthesised infix
tokens). With `--supervise=all` (default) both kinds are also trained on the value of
every subexpression (tree nodes; for the LSTM, the token that completes it), so they
get the same supervision; the test scores the root only. All are trained on
expressions with `train_leaves` digits and tested on fresh expressions with up to
`test_max_leaves` digits: longer expressions than in training, and deep ones (depth 8
and more) that are rare in training. Writes results.json, results.md and
accuracy_vs_depth.png. Results: experiments/tree/README.md.
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnn_jax import cells, scan, tree
from rnn_jax.data import expressions

MODELS = ("rvnn", "rvnn_mlp", "tree_lstm", "lstm")
_COMPOSERS = {"rvnn": tree.RecursiveNN(), "rvnn_mlp": tree.RecursiveNN(hidden_layers=1), "tree_lstm": tree.TreeLSTM()}

_MODELS = flags.DEFINE_list("models", list(MODELS), f"Models among {MODELS}.")
_TREE_HIDDEN = flags.DEFINE_integer("tree_hidden", 64, "Hidden units of the tree models.")
_LSTM_HIDDEN = flags.DEFINE_integer("lstm_hidden", 128, "Hidden units of the sequential LSTM.")
_TRAIN_EXAMPLES = flags.DEFINE_integer("train_examples", 50_000, "Training expressions.")
_TRAIN_LEAVES = flags.DEFINE_list("train_leaves", ["2", "12"], "Min and max digits per training expression.")
_TEST_MAX_LEAVES = flags.DEFINE_integer("test_max_leaves", 24, "Max digits per test expression.")
_TEST_EXAMPLES = flags.DEFINE_integer("test_examples", 10_000, "Test expressions.")
_STEPS = flags.DEFINE_integer("steps", 6000, "Training steps.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Batch size.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 2e-3, "Adam learning rate.")
_SUPERVISE = flags.DEFINE_enum("supervise", "all", ["all", "root"],
                                "Train on every subexpression's value (all) or the root's only.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed for data and initialisation.")
_OUT_DIR = flags.DEFINE_string("out_dir", "runs/tree", "Where results and the plot go.")


def make_model(name: str, hidden_size: int):
  """`(init, logits)` for a tree model or a sequential RNN.

  `init(key) -> params`; `logits(params, batch) -> (root_Bx10, all_BxMx10, targets_BxM)`: the root's
  logits, and logits with targets for every subexpression (tree nodes, or the tokens that complete
  a subexpression; -1 marks positions without one).
  """
  if name in _COMPOSERS:
    composer = _COMPOSERS[name]

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


def _batch(data, index):
  return {"trees": jax.tree.map(lambda a: jnp.asarray(a[index]), data["trees"]),
          "sequence": jnp.asarray(data["sequence"][index]),
          "sequence_length": jnp.asarray(data["sequence_length"][index]), "labels": jnp.asarray(data["labels"][index]),
          "node_values": jnp.asarray(data["node_values"][index]),
          "sequence_targets": jnp.asarray(data["sequence_targets"][index])}


def train_and_test(name: str, train_data, test_data, *, hidden_size, steps, batch_size=64, learning_rate=2e-3,
                   supervise="all", seed=0) -> dict:
  """Trains `name` on `train_data`; returns root accuracy on `test_data` overall and per depth.

  supervise: "root" (the expression's value only) or "all" (every subexpression's value:
    each tree node, or each token that completes a subexpression in the sequence).
  """
  init, logits_fn = make_model(name, hidden_size)
  params = init(jax.random.key(seed))
  optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(learning_rate))
  opt_state = optimizer.init(params)

  def loss_fn(params, batch):
    root_Bx10, all_BxMx10, targets_BxM = logits_fn(params, batch)
    if supervise == "root":
      return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(root_Bx10, batch["labels"]))
    losses_BxM = optax.softmax_cross_entropy_with_integer_labels(all_BxMx10, jnp.maximum(targets_BxM, 0))
    return jnp.sum(jnp.where(targets_BxM >= 0, losses_BxM, 0)) / jnp.sum(targets_BxM >= 0)

  @jax.jit
  def train_step(params, opt_state, batch):
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng, start = np.random.default_rng(seed), time.time()
  num_train = len(train_data["labels"])
  for _ in range(steps):
    params, opt_state, _ = train_step(params, opt_state, _batch(train_data, rng.integers(num_train, size=batch_size)))
  predict = jax.jit(lambda p, b: jnp.argmax(logits_fn(p, b)[0], axis=-1))
  num_test = len(test_data["labels"])
  predictions = np.concatenate([np.asarray(predict(params, _batch(test_data, np.arange(i, min(i + 1000, num_test)))))
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


def main(argv):
  del argv
  min_leaves, max_leaves = map(int, _TRAIN_LEAVES.value)
  train_data = expressions.arithmetic_trees(_SEED.value, _TRAIN_EXAMPLES.value, min_leaves, max_leaves)
  test_data = expressions.arithmetic_trees(_SEED.value + 1, _TEST_EXAMPLES.value, min_leaves, _TEST_MAX_LEAVES.value)
  results = []
  for name in _MODELS.value:
    hidden = _LSTM_HIDDEN.value if name not in _COMPOSERS else _TREE_HIDDEN.value
    results.append(train_and_test(name, train_data, test_data, hidden_size=hidden, steps=_STEPS.value,
                                  batch_size=_BATCH_SIZE.value, learning_rate=_LEARNING_RATE.value,
                                  supervise=_SUPERVISE.value, seed=_SEED.value))
    print(f"{name}: test accuracy {results[-1]['accuracy']:.4f} ({results[-1]['seconds']:.0f} s)", flush=True)
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  with open(os.path.join(_OUT_DIR.value, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  depths = sorted({d for r in results for d, n in r["count_by_depth"].items() if n >= 20})
  lines = ["| model | hidden | params | accuracy | " + " | ".join(f"depth {d}" for d in depths) + " |",
           "|---|---|---|---|" + "---|" * len(depths)]
  for r in results:
    lines.append(f"| {r['model']} | {r['hidden_size']} | {r['num_params']} | {100 * r['accuracy']:.1f} | "
                 + " | ".join(f"{100 * r['accuracy_by_depth'][d]:.0f}" for d in depths) + " |")
  lines.append("| *test trees* | | | | " + " | ".join(str(results[0]["count_by_depth"][d]) for d in depths) + " |")
  with open(os.path.join(_OUT_DIR.value, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  depth_99 = int(np.percentile(train_data["depth"], 99))
  plot(results, test_data, depth_99, os.path.join(_OUT_DIR.value, "accuracy_vs_depth.png"))
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
