"""Long-range dependencies: `python -m experiments.long_range.main [--config=...] [--workdir=...]`.

Trains every (task, variant, T) of the config in its own sub-workdir (resuming), then writes the errors against
the memoryless baselines into the workdir. Override any config field: `--config.lengths=10,20
--config.variants=gru_clip --config.num_steps=300`.
"""

from absl import app, flags

from rnn_jax import train
from experiments import command_line

command_line.require_experiments_extra(("matplotlib",))

from experiments.long_range import adding_copy  # pylint: disable=wrong-import-position  # after the check

_CONFIG = command_line.config_flag(__file__, "default")
_WORKDIR = flags.DEFINE_string("workdir", "runs/long_range", "One sub-workdir per point; results and the plot.")
_MODE = flags.DEFINE_enum("mode", "train", ["train"], "What to do (the held-out errors are the training's own).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  command_line.validated(adding_copy.validate, _CONFIG.value)
  adding_copy.run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  command_line.quiet_library_logs()
  app.run(train.one_line_errors(main))
