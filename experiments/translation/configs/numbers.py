"""Embedded default: numbers in English words -> French words (num2words), a GRU with Bahdanau attention.

  python -m experiments.translation.main --workdir=runs/translation_numbers

About 2-3 minutes on the 2-core CPU; held-out exact match and BLEU are in README.md.
"""

from experiments.translation.configs.base import base_config


def get_config():
  c = base_config()
  c.num_steps = 1000
  c.data.pad_to = 0  # short sentences: one padded shape, one compilation
  return c
