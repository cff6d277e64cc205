"""Sequence tasks by shape (N -> N tagging, N -> 1 classification, 1 -> N generation).

  python -m experiments.shapes.main [--config=...] [--workdir=...] [--mode=train|eval]

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
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"],
                          "train: every example (finished ones are reused); eval: score the workdir's trained "
                          "examples on a fresh held-out set (config.eval.sizes, seeded by 10000 + config.seed).")


def main(argv):
  command_line.require_experiments_extra(("matplotlib",))
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  command_line.validated(examples.validate, _CONFIG.value)
  if _MODE.value == "train":
    examples.run(_CONFIG.value, _WORKDIR.value)
  else:
    examples.evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  command_line.quiet_library_logs()
  app.run(train.one_line_errors(main))
