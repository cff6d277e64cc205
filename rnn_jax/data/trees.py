"""The batch-of-binary-trees data type that tree datasets produce and `rnn_jax.tree` runs over."""

from __future__ import annotations

from typing import NamedTuple

import jax


class Trees(NamedTuple):
  """A batch of binary trees as arrays, nodes in topological order (children before parents, e.g. post-order).

  tokens: a leaf's symbol, or an internal node's composition type (e.g. its operator; a single type for
    unlabelled trees).
  left, right: child node indices (< the node's own index), -1 for leaves.
  num_nodes: nodes in use; the root is node `num_nodes - 1`, later nodes are padding.
  """
  tokens: jax.Array     # [B, N] int
  left: jax.Array       # [B, N] int, -1 at leaves
  right: jax.Array      # [B, N] int, -1 at leaves
  num_nodes: jax.Array  # [B] int
