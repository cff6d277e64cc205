"""Handwriting synthesis (Graves 2013, sec. 5): the generator reads the text through the soft Gaussian window.

  python -m experiments.handwriting.main --config=experiments/handwriting/configs/synthesize.py \
      --workdir=runs/handwriting/synthesize

Result: experiments/handwriting/README.md.
"""

from experiments.handwriting.configs.base import base_config


def get_config():
  c = base_config()
  c.task = "generation"
  c.model.num_layers = 3
  c.model.hidden_size = 128
  c.model.window_components = 10
  c.optimizer.learning_rate = 2e-3
  c.num_steps = 3000
  return c
