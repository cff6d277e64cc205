"""Default: BLSTM-CTC on synthetic telephone-keypad (DTMF) digit strings of 1-7 digits; no download.

  python -m experiments.speech.main --config=experiments/speech/configs/dtmf.py --workdir=runs/speech/dtmf

Result: test digit error rate and string accuracy in experiments/speech/README.md.
"""

from experiments.speech.configs.base import base_config


def get_config():
  return base_config()
