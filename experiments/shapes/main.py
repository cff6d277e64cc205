"""Sequence tasks by shape (N -> N tagging, N -> 1 classification, 1 -> N generation).

  python -m experiments.shapes.main [--config=...] [--workdir=...]

Trains each example of `config.examples` in a sub-workdir (a rerun resumes them) and writes results.json and
predictions.png in the workdir. Override any config field: `--config.num_steps=300 --config.examples=(decoder,)`.
Models: experiments/shapes/model.py. Results: experiments/shapes/README.md.
"""

from absl import app, flags

from rnn_jax import train
from experiments import command_line
from experiments.shapes import examples

_CONFIG = command_line.config_flag(__file__, "default")
_WORKDIR = flags.DEFINE_string("workdir", "runs/shapes", "Each example's sub-workdir, results and the plot.")
_MODE = flags.DEFINE_enum("mode", "train", ["train"], "What to do (train: every example; finished ones are reused).")


def main(argv):
  command_line.require_experiments_extra(("matplotlib",))
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    examples.validate(_CONFIG.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  examples.run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  command_line.quiet_library_logs()
  app.run(train.one_line_errors(main))
