"""Handwriting: `python -m experiments.handwriting.main --config=experiments/handwriting/configs/<name>.py`.

Recognition (BLSTM + CTC) or generation (Graves' MDN, optionally conditioned on text),
chosen by `config.task`. Trains (resuming from the workdir), evaluates on the test split,
writes results.json and PNGs into the workdir. Override fields: `--config.num_steps=200`.
"""

import os

from absl import app, flags
from ml_collections import config_flags

from rnn_jax.data import fetch
from experiments.handwriting import handwriting
from rnn_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "recognize_synthetic.py"),
    "Config file (see configs/).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/handwriting", "Checkpoints, metrics, TensorBoard, results, PNGs.")


@fetch.exit_on_missing_data
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  train.distributed.initialize_from(_CONFIG.value)
  handwriting.run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(train.one_line_errors(main))
