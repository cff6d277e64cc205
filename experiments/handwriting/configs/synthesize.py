"""Handwriting synthesis (Graves 2013, sec. 5): the generator reads the text through the soft Gaussian window.

  python -m experiments.handwriting.main --config=experiments/handwriting/configs/synthesize.py \
      --workdir=runs/handwriting/synthesize

Result: experiments/handwriting/README.md.
"""

from experiments.handwriting.configs import generate


def get_config():
  c = generate.get_config()  # the same generator, reading the text through the window
  c.model.window_components = 10
  return c
