"""The recogniser as pure functions: features -> (optional frame stacking) -> recurrent stack -> dense -> CTC logits.

`[B, T, F]` normalised log-mel features -> every `subsample` frames concatenated -> `num_layers` cells
(bidirectional or not; `rnn_jax.scan.run_stack`, padding-aware) -> `[B, T', 11]` logits: blank, then digits 0-9.
"""

from __future__ import annotations

import jax

from rnn_jax import cells, layers, scan

NUM_CLASSES = 11   # CTC blank (0) and the digits 0-9 as labels 1-10


def init(key, cfg, feature_size: int):
  """Params `{"rnn": run_stack params, "out": dense}` for `cfg` (config.model)."""
  k_rnn, k_out = jax.random.split(key)
  directions = 2 if cfg.bidirectional else 1
  return {"rnn": scan.init_stack(k_rnn, cells.from_config(cfg), feature_size * cfg.subsample, cfg.hidden_size,
                                 cfg.num_layers, bidirectional=cfg.bidirectional),
          "out": layers.dense_init(k_out, directions * cfg.hidden_size, NUM_CLASSES)}


def logits(params, cfg, feats_BxTxF, frames_B, dropout_rng=None):
  """`(logits_BxT'xV, lengths_B')`; outputs past each length are padding."""
  x_BxTxF, lengths_B = scan.stack_frames(feats_BxTxF, frames_B, cfg.subsample)
  rate = cfg.dropout if dropout_rng is not None else 0.0
  _, ys_BxTxH = scan.run_stack(cells.from_config(cfg), params["rnn"], x_BxTxF, lengths=lengths_B,
                               bidirectional=cfg.bidirectional, dropout_rate=rate, dropout_rng=dropout_rng)
  return layers.dense(params["out"], ys_BxTxH), lengths_B


def digits_to_labels(digits):
  """Digits 0-9 -> CTC labels 1-10."""
  return [int(d) + 1 for d in digits]


def labels_to_digits(labels) -> str:
  return "".join(str(int(l) - 1) for l in labels)
