"""BLSTM-CTC on UJI Pen Characters v2 digits, writer-disjoint test (single-digit accuracy).

  python -m experiments.handwriting.main --config=experiments/handwriting/configs/recognize_uji.py \
      --workdir=runs/handwriting/recognize_uji

Needs ../shared/data/uji_pen_digits/ujipenchars2_digits.json (or --config.data.path=...).
Result: experiments/handwriting/README.md.
"""

import os

from experiments.handwriting.configs.base import base_config


def get_config():
  c = base_config()
  c.data.source = "uji"
  c.data.path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "shared", "data", "uji_pen_digits",
                             "ujipenchars2_digits.json")
  c.data.height_normalize = True
  c.data.resample_step = 0.08
  c.data.augment = 1.0
  c.model.subsample = 1
  c.model.dropout = 0.2
  c.num_steps = 1500
  c.eval_every = 250
  c.eval.beam_size = 4
  return c
