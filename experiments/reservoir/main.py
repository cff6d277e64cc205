"""Echo-state network on Mackey-Glass (tau = 17): free-running prediction, NRMSE at 84 steps.

  python -m experiments.reservoir.main [--config=...] [--workdir=...]

The readout is fitted in closed form (no gradient steps); the workdir gets config.json, metrics.jsonl,
tensorboard/, results.json and mackey_glass.png. Override any config field: `--config.model.size=500`.
Protocol: experiments/reservoir/esn.py. Results: experiments/reservoir/README.md.
"""

from absl import app, flags

from rnn_jax import train
from experiments import command_line
from experiments.reservoir import esn

_CONFIG = command_line.config_flag(__file__, "default")
_WORKDIR = flags.DEFINE_string("workdir", "runs/reservoir", "config.json, metrics, results.json and the plot.")
_MODE = flags.DEFINE_enum("mode", "train", ["train"], "What to do (train: fit the readout, then test).")


def main(argv):
  command_line.require_experiments_extra(("matplotlib",))
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  command_line.validated(esn.validate, _CONFIG.value)
  esn.run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  command_line.quiet_library_logs()
  app.run(train.one_line_errors(main))
