"""The long-range experiment's model: one recurrent cell (a variant: cell, initialisation, gradient clip) and a
linear readout, with the adding problem's and the copy task's losses."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnn_jax import cells, scan

COPY_VOCAB = 10  # blank, 8 symbols, delimiter
TASKS = ("adding", "copy")


@dataclasses.dataclass(frozen=True)
class Variant:
  """A cell with its options, and the global-norm gradient clip (0: none)."""
  cell: str
  options: tuple = ()
  clip_norm: float = 0.0


VARIANTS = {
    "tanh_normal": Variant("elman", (("recurrent_init", "normal"),)),
    "tanh_normal_clip": Variant("elman", (("recurrent_init", "normal"),), 1.0),
    "tanh_orthogonal_clip": Variant("elman", (("recurrent_init", "orthogonal"),), 1.0),
    "irnn_clip": Variant("irnn", (), 1.0),
    "lstm": Variant("lstm"),
    "lstm_clip": Variant("lstm", (), 1.0),
    "gru_clip": Variant("gru", (), 1.0),
}


def make_cell(variant: str):
  spec = VARIANTS[variant]
  return cells.get(spec.cell, **dict(spec.options))


def init_params(cell, task: str, hidden_size: int, key: jax.Array) -> dict:
  """The cell's params (`rnn`) and a linear readout (`w_out [H, O]`, `b_out [O]`) for `task`."""
  k_cell, k_out = jax.random.split(key)
  input_size, output_size = (2, 1) if task == "adding" else (COPY_VOCAB, COPY_VOCAB)
  return {"rnn": cell.init(k_cell, input_size, hidden_size),
          "w_out": jax.random.normal(k_out, (hidden_size, output_size)) / np.sqrt(hidden_size),
          "b_out": jnp.zeros((output_size,))}


def task_loss(cell, task: str, params, x, y) -> tuple[jax.Array, dict]:
  """Adding: MSE of the last step's readout. Copy: cross-entropy per step and copied-symbol accuracy."""
  _, ys_BxTxH = scan.run(cell, params["rnn"], x)
  if task == "adding":
    prediction_B = ys_BxTxH[:, -1] @ params["w_out"][:, 0] + params["b_out"][0]
    return jnp.mean(jnp.square(prediction_B - y)), {}
  logits_BxTxV = ys_BxTxH @ params["w_out"] + params["b_out"][None, None, :]
  cross_entropy = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, y))
  accuracy = jnp.mean(jnp.argmax(logits_BxTxV[:, -10:], axis=-1) == y[:, -10:])
  return cross_entropy, {"copy_accuracy": accuracy}
