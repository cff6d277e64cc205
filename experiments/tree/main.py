"""Tree: `python -m experiments.tree.main [--config=...] [--workdir=...] [--mode=...]`.

Modes: train (default; trains each model of `config.models` in `<workdir>/<model>`, resuming, then writes the
test accuracies by depth into the workdir), eval (test accuracy by depth of the workdir's checkpoints).
Override any config field: `--config.models="('rvnn_mlp','lstm')" --config.num_steps=300`.
"""

from absl import app, flags

from rnn_jax import train
from experiments import command_line

command_line.require_experiments_extra(("matplotlib",))

from experiments.tree import arithmetic  # pylint: disable=wrong-import-position  # after the check

_CONFIG = command_line.config_flag(__file__, "default")
_WORKDIR = flags.DEFINE_string("workdir", "runs/tree", "One sub-workdir per model; results and the plot.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"], "What to do.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  command_line.validated(arithmetic.validate, _CONFIG.value)
  if _MODE.value == "train":
    arithmetic.run(_CONFIG.value, _WORKDIR.value)
  else:
    arithmetic.evaluate_checkpoints(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  command_line.quiet_library_logs()
  app.run(train.one_line_errors(main))
