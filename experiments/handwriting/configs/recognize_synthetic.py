"""Default: BLSTM-CTC recogniser on synthetic Hershey-font words (held-out words, CER).

  python -m experiments.handwriting.main --config=experiments/handwriting/configs/recognize_synthetic.py \
      --workdir=runs/handwriting/recognize_synthetic

Result: experiments/handwriting/README.md.
"""

from experiments.handwriting.configs.base import base_config


def get_config():
  return base_config()
