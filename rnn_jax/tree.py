"""Recursive (tree-structured) networks over batched binary trees.

A shared composition is applied bottom-up: leaves are embedded, each internal node
combines its two children (Socher et al. 2011, recursive NN; Tai et al. 2015, binary
Tree-LSTM). Trees are batched as arrays with their nodes in topological order
(children before parents, e.g. post-order):

  trees = Trees(tokens_BxN, left_BxN, right_BxN, num_nodes_B)    # rnn_jax.data.trees
    tokens: a leaf's symbol (indexes `num_leaf_tokens`), or an internal node's
            composition type, e.g. its operator (indexes `num_ops`; 1 for unlabelled trees)
    left, right: child node indices (< the node's own index), -1 for leaves
    num_nodes: nodes in use; the root is node `num_nodes - 1`, later nodes are padding

  composer = tree.RecursiveNN()                       # or tree.TreeLSTM()
  params = composer.init(key, num_leaf_tokens, num_ops, hidden_size)
  root_BxH, nodes_BxNxH = tree.run(composer, params, trees)

`run` is one `jax.lax.scan` over node positions: at step n every tree in the batch
computes its node n from the states of its children, which are already in the carry
(a `[B, N, ...]` buffer of node states). It is jit-compatible and differentiable.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax import layers, ops
from rnn_jax.data.trees import Trees


class TreeLSTMState(NamedTuple):
  c: jax.Array
  h: jax.Array


@dataclasses.dataclass(frozen=True)
class RecursiveNN:
  """Socher-style recursive network with one composition matrix per node type (operator).

  leaf:     h = E[token]
  internal: h = tanh([h_l, h_r] W[op] + b[op])                       (hidden_layers = 0)
            h = tanh(relu([h_l, h_r] W[op] + b[op]) V + c)          (hidden_layers = 1: an MLP composition)
  Params: `embed [V, H]`, `w [K, 2H, H]`, `b [K, H]`, and with a hidden layer `v [H, H]`, `c [H]`.
  State: `h [..., H]`.
  """

  hidden_layers: int = 0

  def __post_init__(self):
    if self.hidden_layers not in (0, 1):
      raise ValueError(f"RecursiveNN hidden_layers must be 0 or 1, got {self.hidden_layers}")

  def init(self, key, num_leaf_tokens: int, num_ops: int, hidden_size: int):
    k_e, k_w, k_v = jax.random.split(key, 3)
    params = {
        "embed": jax.random.normal(k_e, (num_leaf_tokens, hidden_size)) / jnp.sqrt(hidden_size),
        "w": jax.vmap(lambda k: layers.glorot_uniform(k, (2 * hidden_size, hidden_size)))(
            jax.random.split(k_w, num_ops)),
        "b": jnp.zeros((num_ops, hidden_size)),
    }
    if self.hidden_layers:
      params["v"] = layers.glorot_uniform(k_v, (hidden_size, hidden_size))
      params["c"] = jnp.zeros((hidden_size,))
    return params

  def zero_state(self, params, batch_shape):
    return jnp.zeros((*batch_shape, params["embed"].shape[1]), params["embed"].dtype)

  def leaf(self, params, tokens_B):
    return jnp.take(params["embed"], tokens_B, axis=0)

  def compose(self, params, left_BxH, right_BxH, ops_B):
    children_Bx2H = jnp.concatenate([left_BxH, right_BxH], axis=-1)
    z_BxKxH = jnp.einsum("bi,kih->bkh", children_Bx2H, params["w"]) + params["b"][None]
    z_BxH = jnp.take_along_axis(z_BxKxH, ops_B[:, None, None], axis=1)[:, 0]  # K is small: no [B, 2H, H] gather
    if not self.hidden_layers:
      return jnp.tanh(z_BxH)
    hidden_BxH = jax.nn.relu(z_BxH) @ params["v"]
    return jnp.tanh(hidden_BxH + ops.along_last(params["c"], hidden_BxH))

  def hidden(self, state):
    return state


@dataclasses.dataclass(frozen=True)
class TreeLSTM:
  """Binary Tree-LSTM (Tai et al. 2015, N-ary with N = 2), node type as input.

  With x = E_leaf[token] at leaves (children zero) and x = E_op[op] at internal nodes:
    i, f_l, f_r, o, u = split(x + h_l U_l + h_r U_r + b)
    c = sigmoid(i) tanh(u) + sigmoid(f_l) c_l + sigmoid(f_r) c_r,   h = sigmoid(o) tanh(c)
  Params: `embed [V, 5H]`, `op_embed [K, 5H]`, `u_l`, `u_r [H, 5H]`, `b [5H]` (forget slices at
  `forget_bias`). State: `TreeLSTMState(c, h)`.
  """

  forget_bias: float = 1.0

  def init(self, key, num_leaf_tokens: int, num_ops: int, hidden_size: int):
    k_e, k_o, k_l, k_r = jax.random.split(key, 4)
    gates = 5 * hidden_size
    return {
        "embed": jax.random.normal(k_e, (num_leaf_tokens, gates)) / jnp.sqrt(hidden_size),
        "op_embed": jax.random.normal(k_o, (num_ops, gates)) / jnp.sqrt(hidden_size),
        "u_l": layers.orthogonal_blocks(k_l, hidden_size, 5),
        "u_r": layers.orthogonal_blocks(k_r, hidden_size, 5),
        "b": jnp.zeros((gates,)).at[hidden_size:3 * hidden_size].set(self.forget_bias),
    }

  def zero_state(self, params, batch_shape):
    zeros = jnp.zeros((*batch_shape, params["u_l"].shape[0]), params["u_l"].dtype)
    return TreeLSTMState(zeros, zeros)

  def _cell(self, params, x_Bx5H, left, right):
    z = x_Bx5H + left.h @ params["u_l"] + right.h @ params["u_r"]
    i, f_l, f_r, o, u = jnp.split(z + ops.along_last(params["b"], z), 5, axis=-1)
    c = (ops.fast_sigmoid(i) * jnp.tanh(u) + ops.fast_sigmoid(f_l) * left.c
         + ops.fast_sigmoid(f_r) * right.c)
    return TreeLSTMState(c, ops.fast_sigmoid(o) * jnp.tanh(c))

  def leaf(self, params, tokens_B):
    zero = self.zero_state(params, tokens_B.shape)
    return self._cell(params, jnp.take(params["embed"], tokens_B, axis=0), zero, zero)

  def compose(self, params, left, right, ops_B):
    return self._cell(params, jnp.take(params["op_embed"], ops_B, axis=0), left, right)

  def hidden(self, state):
    return state.h


Composer = Any  # RecursiveNN | TreeLSTM: init, zero_state, leaf, compose, hidden


def _gather_nodes(buffer_BxNxD, index_B):
  return jnp.take_along_axis(buffer_BxNxD, index_B[:, None, None], axis=1)[:, 0]


def run(composer: Composer, params, trees: Trees, *, unroll: int = 1):
  """Runs `composer` bottom-up over every tree of the batch.

  Returns:
    `(root_BxH, nodes_BxNxH)`: the hidden state of each root, and of every node
    (padding nodes, `n >= num_nodes`, are zero).
  """
  tokens_NxB, left_NxB, right_NxB = (jnp.swapaxes(a, 0, 1) for a in trees[:3])
  batch, max_nodes = trees.tokens.shape
  zero = composer.zero_state(params, (batch,))
  buffer = jax.tree.map(lambda z: jnp.zeros((batch, max_nodes) + z.shape[1:], z.dtype), zero)

  def body(buffer, inputs):
    n, tokens_B, left_B, right_B = inputs
    left = jax.tree.map(lambda b: _gather_nodes(b, jnp.maximum(left_B, 0)), buffer)
    right = jax.tree.map(lambda b: _gather_nodes(b, jnp.maximum(right_B, 0)), buffer)
    is_leaf_B, in_tree_B = left_B < 0, n < trees.num_nodes
    leaf_state = composer.leaf(params, jnp.where(is_leaf_B, tokens_B, 0))
    inner_state = composer.compose(params, left, right, jnp.where(is_leaf_B, 0, tokens_B))

    def select(leaf, inner):
      pick = lambda mask: mask.reshape(mask.shape + (1,) * (leaf.ndim - 1))
      return jnp.where(pick(in_tree_B), jnp.where(pick(is_leaf_B), leaf, inner), 0)

    state = jax.tree.map(select, leaf_state, inner_state)
    buffer = jax.tree.map(lambda b, s: jax.lax.dynamic_update_index_in_dim(b, s, n, axis=1), buffer, state)
    return buffer, None

  buffer, _ = jax.lax.scan(body, buffer, (jnp.arange(max_nodes), tokens_NxB, left_NxB, right_NxB), unroll=unroll)
  nodes_BxNxH = composer.hidden(buffer)
  return _gather_nodes(nodes_BxNxH, trees.num_nodes - 1), nodes_BxNxH
