"""Handwriting: `python -m experiments.handwriting.main --config=experiments/handwriting/configs/<name>.py`.

Recognition (BLSTM + CTC) or generation (Graves' MDN, optionally conditioned on text),
chosen by `config.task`. Trains (resuming from the workdir), evaluates on the test split,
writes results.json and PNGs into the workdir. Override fields: `--config.num_steps=200`.
"""

from absl import app, flags

from rnn_jax.data import fetch
from rnn_jax import train
from experiments import command_line

command_line.require_experiments_extra(("matplotlib",))

from experiments.handwriting import handwriting  # pylint: disable=wrong-import-position  # after the check

_CONFIG = command_line.config_flag(__file__, "recognize_synthetic")
_WORKDIR = flags.DEFINE_string("workdir", "runs/handwriting", "Checkpoints, metrics, TensorBoard, results, PNGs.")


@fetch.exit_on_missing_data
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  train.distributed.initialize_from(_CONFIG.value)
  handwriting.run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  command_line.quiet_library_logs()
  app.run(train.one_line_errors(main))
