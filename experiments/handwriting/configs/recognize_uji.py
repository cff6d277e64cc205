"""BLSTM-CTC on UJI Pen Characters v2 digits, writer-disjoint test (single-digit accuracy).

  python -m rnn_jax.data.fetch uji_pen_digits          # once (offline: --from=PATH to the downloaded JSON)
  python -m experiments.handwriting.main --config=experiments/handwriting/configs/recognize_uji.py \
      --workdir=runs/handwriting/recognize_uji

Another copy of the JSON: --config.data.path=PATH. Result: experiments/handwriting/README.md.
"""

from experiments.handwriting.configs.base import base_config


def get_config():
  c = base_config()
  c.data.source = "uji"
  c.data.path = "fetched:uji_pen_digits"
  c.data.height_normalize = True
  c.data.resample_step = 0.08
  c.data.augment = 1.0
  c.model.subsample = 1
  c.model.dropout = 0.2
  c.num_steps = 1500
  c.eval_every = 250
  c.eval.beam_size = 4
  return c
