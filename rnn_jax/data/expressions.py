"""Nested arithmetic expressions mod 10 as parse trees and as token sequences.

A task whose label depends on the tree structure: `((3 + 5) * (9 - 4))` mod 10 = 0.
The same expressions come out as `rnn_jax.data.trees.Trees` arrays (nodes in post-order,
leaf tokens = digits, internal tokens = operator index) for recursive networks and as
padded token sequences (fully parenthesised infix, or prefix) for sequential RNNs.

Sequence vocabulary: digits 0-9 are tokens 0-9, operators `OPS` are 10..12, "(" is 13,
")" is 14 (`SEQUENCE_VOCAB` = 15).
"""

from __future__ import annotations

import numpy as np

from rnn_jax.data.trees import Trees

OPS = ("+", "-", "*")
OPEN, CLOSE = 10 + len(OPS), 11 + len(OPS)
SEQUENCE_VOCAB = 12 + len(OPS)
_APPLY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def _random_tree(rng: np.random.Generator, num_leaves: int, ops):
  """Nested tuples: a digit (leaf) or `(op_index, left, right)`; the shape splits the leaves at random."""
  if num_leaves == 1:
    return int(rng.integers(10))
  split = int(rng.integers(1, num_leaves))
  return (int(rng.integers(len(ops))), _random_tree(rng, split, ops), _random_tree(rng, num_leaves - split, ops))


def _flatten(tree, ops, modulus, nodes):
  """Appends `(token, left, right, value)` in post-order; returns (node index, value, depth)."""
  if isinstance(tree, int):
    nodes.append((tree, -1, -1, tree))
    return len(nodes) - 1, tree, 0
  op, left, right = tree
  left_index, left_value, left_depth = _flatten(left, ops, modulus, nodes)
  right_index, right_value, right_depth = _flatten(right, ops, modulus, nodes)
  value = _APPLY[ops[op]](left_value, right_value) % modulus
  nodes.append((op, left_index, right_index, value))
  return len(nodes) - 1, value, 1 + max(left_depth, right_depth)


def _sequence(tree, notation, ops, modulus):
  """`(tokens, targets, value)`: targets hold a subexpression's value at the token that completes it, else -1."""
  if isinstance(tree, int):
    return [tree], [tree], tree
  op, left, right = tree
  left_tokens, left_targets, left_value = _sequence(left, notation, ops, modulus)
  right_tokens, right_targets, right_value = _sequence(right, notation, ops, modulus)
  value = _APPLY[ops[op]](left_value, right_value) % modulus
  if notation == "prefix":  # completed by its last digit, which already has a target: keep the outermost
    right_targets = right_targets[:-1] + [value]
    return [10 + op] + left_tokens + right_tokens, [-1] + left_targets + right_targets, value
  return ([OPEN] + left_tokens + [10 + op] + right_tokens + [CLOSE],
          [-1] + left_targets + [-1] + right_targets + [value], value)


def arithmetic_trees(seed: int, num_examples: int, min_leaves: int, max_leaves: int, *, ops=OPS,
                     modulus: int = 10, notation: str = "infix") -> dict:
  """Random expressions with `min_leaves..max_leaves` digits (uniform), as numpy arrays.

  Returns a dict with
    trees: `Trees` with `N = 2 * max_leaves - 1` node slots,
    node_values `[B, N]`: the value of every node (0 on padding),
    labels `[B]`: the root's value mod `modulus`, depth `[B]`: edges on the longest root-leaf path,
    sequence `[B, L]` (tokens, 0-padded) and sequence_length `[B]`: the expression in
      fully parenthesised infix (`L = 4 * max_leaves - 3`) or prefix (`L = 2 * max_leaves - 1`),
    sequence_targets `[B, L]`: at the token that completes a subexpression (a digit, or its ")"
      in infix) that subexpression's value, -1 elsewhere; the last valid token holds the label.
      (In prefix a subexpression ending where an enclosing one ends is labelled by the outer one.)
  """
  if notation not in ("infix", "prefix"):
    raise ValueError(f"notation must be 'infix' or 'prefix', got {notation!r}")
  if not 1 <= min_leaves <= max_leaves:
    raise ValueError(f"need 1 <= min_leaves <= max_leaves, got {min_leaves}, {max_leaves}")
  rng = np.random.default_rng(seed)
  max_nodes = 2 * max_leaves - 1
  max_length = 4 * max_leaves - 3 if notation == "infix" else max_nodes
  arrays = {name: np.zeros((num_examples, max_nodes), np.int32) for name in ("tokens", "left", "right", "values")}
  arrays["left"][:] = -1
  arrays["right"][:] = -1
  num_nodes, labels, depth = (np.zeros(num_examples, np.int32) for _ in range(3))
  sequence, sequence_length = np.zeros((num_examples, max_length), np.int32), np.zeros(num_examples, np.int32)
  sequence_targets = np.full((num_examples, max_length), -1, np.int32)
  for i in range(num_examples):
    tree = _random_tree(rng, int(rng.integers(min_leaves, max_leaves + 1)), ops)
    nodes = []
    _, labels[i], depth[i] = _flatten(tree, ops, modulus, nodes)
    num_nodes[i] = len(nodes)
    for name, column in zip(("tokens", "left", "right", "values"), zip(*nodes)):
      arrays[name][i, :len(nodes)] = column
    tokens, targets, _ = _sequence(tree, notation, ops, modulus)
    sequence[i, :len(tokens)], sequence_targets[i, :len(tokens)], sequence_length[i] = tokens, targets, len(tokens)
  return {"trees": Trees(arrays["tokens"], arrays["left"], arrays["right"], num_nodes),
          "node_values": arrays["values"], "labels": labels, "depth": depth,
          "sequence": sequence, "sequence_length": sequence_length, "sequence_targets": sequence_targets}
