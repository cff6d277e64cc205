"""Default: BLSTM-CTC recogniser on synthetic Hershey-font words (held-out words, CER); a few minutes on a CPU.

  python -m experiments.handwriting.main --config=experiments/handwriting/configs/recognize_synthetic.py \
      --workdir=runs/handwriting/recognize_synthetic

Result (2 x 128 BLSTM, 600 steps): test CER well under 1 %; see experiments/handwriting/README.md.
"""

from experiments.handwriting.configs.base import base_config


def get_config():
  c = base_config()
  c.data.synthetic.sizes = (10000, 1000, 1000)
  c.data.pad_multiple = 64   # fewer distinct batch shapes to compile
  c.data.height_normalize = True   # every word at unit height and resampled at a fixed pen speed (about the
  c.data.resample_step = 0.1       # synthetic 19 points per letter): ink of any size and sampling rate reads alike
  c.num_steps = 600
  c.eval_every = 300
  c.checkpoint_every = 300
  return c
