"""Language modeling: `python -m experiments.language_modeling.main [--config=...] [--workdir=...]`.

Modes: train (default; resumes from the workdir's latest checkpoint), eval, sample. eval and sample take the
model and corpus from the run's saved `config.json`; eval reads `eval_splits` and `data.eval_batch_size`, and
sample the `sample` fields and `seed`, from the command line.
Override any config field: `--config.model.hidden_size=512 --config.data.path=input.txt`.
"""

from absl import app, flags

from rnn_jax.data import fetch
from experiments import command_line
from experiments.language_modeling import lm
from rnn_jax import train

_CONFIG = command_line.config_flag(__file__, "char_default")
_WORKDIR = flags.DEFINE_string("workdir", "runs/language_modeling", "Checkpoints, vocab, metrics, TensorBoard.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval", "sample"], "What to do.")


@fetch.exit_on_missing_data
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = command_line.validated(lm.validate, _CONFIG.value)
  train.distributed.initialize_from(config)
  if _MODE.value == "train":
    lm.run(config, _WORKDIR.value)
  elif _MODE.value == "eval":
    lm.evaluate_checkpoint(config, _WORKDIR.value)
  else:  # the sample fields are this config's; the model is the one the run saved
    model, vocab, params, _ = lm.restore(_WORKDIR.value)
    print(lm.sample_text(model, vocab, params, config.sample.prime, config.sample.length,
                         config.sample.temperature, config.seed))


if __name__ == "__main__":
  command_line.quiet_library_logs()
  app.run(train.one_line_errors(main))
