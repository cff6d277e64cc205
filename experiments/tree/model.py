"""Recursive networks (RvNN, MLP-composed RvNN, Tree-LSTM) and a sequential RNN that read arithmetic expressions
and predict their values mod 10.

Tree models read the parse tree and predict from the root's state; the sequential RNN reads the fully
parenthesised infix tokens and predicts from its final state. Both also give a prediction for every
subexpression (tree nodes; for the RNN, the token that completes it), for training on every subexpression's value.
The library's tree blocks are imported here only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnn_jax import cells, scan, tree
from rnn_jax.data import expressions

MODELS = ("rvnn", "rvnn_mlp", "tree_lstm", "lstm")
COMPOSERS = {"rvnn": tree.RecursiveNN(), "rvnn_mlp": tree.RecursiveNN(hidden_layers=1), "tree_lstm": tree.TreeLSTM()}
SUPERVISION = ("all", "root")


def hidden_size(name: str, model_config) -> int:
  """The hidden units of model `name`: `tree_hidden` for the tree models, `lstm_hidden` for the sequential one."""
  return model_config.tree_hidden if name in COMPOSERS else model_config.lstm_hidden


def _readout(key, size: int) -> dict:
  return {"w_out": jax.random.normal(key, (size, 10)) / np.sqrt(size), "b_out": jnp.zeros((10,))}


def make_model(name: str, size: int):
  """`(init, logits)` for a tree model or a sequential RNN with `size` hidden units.

  `init(key) -> params`; `logits(params, batch) -> (root_Bx10, all_BxMx10, targets_BxM)`: the root's logits, and
  logits with targets for every subexpression (tree nodes, or the tokens that complete a subexpression; -1 marks
  positions without one).
  """
  if name in COMPOSERS:
    composer = COMPOSERS[name]

    def init(key):
      k_tree, k_out = jax.random.split(key)
      return {"tree": composer.init(k_tree, 10, len(expressions.OPS), size), **_readout(k_out, size)}

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
    return {"embed": jax.random.normal(k_embed, (expressions.SEQUENCE_VOCAB, size)) / np.sqrt(size),
            "rnn": cell.init(k_cell, size, size), **_readout(k_out, size)}

  def logits(params, batch):
    carry, ys_BxLxH = scan.run(cell, params["rnn"], params["embed"][batch["sequence"]],
                               lengths=batch["sequence_length"])
    return (cell.carry_hidden(carry) @ params["w_out"] + params["b_out"][None],
            ys_BxLxH @ params["w_out"] + params["b_out"][None, None], batch["sequence_targets"])
  return init, logits


def loss(logits_fn, supervise: str, params, batch) -> tuple[jax.Array, dict]:
  """Mean cross-entropy of the root's value ("root") or of every subexpression's value ("all"), and the root's
  accuracy."""
  root_Bx10, all_BxMx10, targets_BxM = logits_fn(params, batch)
  accuracy = jnp.mean(jnp.argmax(root_Bx10, axis=-1) == batch["labels"])
  if supervise == "root":
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(root_Bx10, batch["labels"])), {"accuracy": accuracy}
  losses_BxM = optax.softmax_cross_entropy_with_integer_labels(all_BxMx10, jnp.maximum(targets_BxM, 0))
  return jnp.sum(jnp.where(targets_BxM >= 0, losses_BxM, 0)) / jnp.sum(targets_BxM >= 0), {"accuracy": accuracy}
