"""Embedded default: character-level 2x256 LSTM on the standard library's docstrings, a few minutes on a CPU.

  python -m experiments.language_modeling.main --workdir=runs/lm_char_default
"""

from experiments.language_modeling.configs.base import base_config


def get_config():
  c = base_config()
  c.data.reset_probability = 0.02  # train from zero carries too, as evaluation starts every stream
  c.num_steps = 600
  c.eval_every = 300
  return c
