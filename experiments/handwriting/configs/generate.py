"""Unconditional handwriting generation (Graves 2013, sec. 4): stacked LSTM with skip connections + MDN.

  python -m experiments.handwriting.main --config=experiments/handwriting/configs/generate.py \
      --workdir=runs/handwriting/generate

Result: experiments/handwriting/README.md.
"""

from experiments.handwriting.configs.base import base_config


def get_config():
  c = base_config()
  c.task = "generation"
  c.model.num_layers = 3
  c.model.hidden_size = 128
  c.optimizer.learning_rate = 2e-3
  c.num_steps = 3000
  return c
