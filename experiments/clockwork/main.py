"""Clockwork RNN vs LSTM vs tanh RNN generating a waveform from no input (Koutník et al. 2014, sec. 4.1).

  python -m experiments.clockwork.main [--config=...] [--workdir=...]

Trains every model of `config.sweep` with every learning rate and seed, each run in a sub-workdir (a rerun
resumes them), and writes results.json, results.md and waveforms.png in the workdir. Override any config field:
`--config.num_steps=300 --config.sweep.seeds=(0,)`. Results: experiments/clockwork/README.md.
"""

from absl import app, flags

from rnn_jax import train
from experiments import command_line
from experiments.clockwork import waveform

_CONFIG = command_line.config_flag(__file__, "default")
_WORKDIR = flags.DEFINE_string("workdir", "runs/clockwork", "Each run's sub-workdir, results and the plot.")
_MODE = flags.DEFINE_enum("mode", "train", ["train"], "What to do (train: the sweep; finished runs are reused).")


def main(argv):
  command_line.require_experiments_extra(("matplotlib",))
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  command_line.validated(waveform.validate, _CONFIG.value)
  waveform.run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  command_line.quiet_library_logs()
  app.run(train.one_line_errors(main))
