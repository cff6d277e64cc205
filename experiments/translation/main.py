"""Translation: `python -m experiments.translation.main [--config=...] [--workdir=...] [--mode=...]`.

Modes: train (default; resumes from the workdir's latest checkpoint, then writes test figures),
eval (test figures of the workdir's checkpoint), translate (lines from --input or stdin, with
the workdir's checkpoint; beam size and length limits from --config.decode.*), compare
(BLEU-by-source-length plot of several trained workdirs: --compare=label=dir,label=dir).
Override any config field: `--config.model.attention=none --config.data.source=a.fr --config.data.target=a.en`.
"""

import os
import sys

from absl import app, flags

from rnn_jax.data import fetch
from rnn_jax.data.sources import DataError
from rnn_jax import train
from experiments import command_line

command_line.require_experiments_extra()

from experiments.translation import experiment  # pylint: disable=wrong-import-position  # after the check

_CONFIG = command_line.config_flag(__file__, "numbers")
_WORKDIR = flags.DEFINE_string("workdir", "runs/translation", "Checkpoints, vocabularies, metrics, figures.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval", "translate", "compare"], "What to do.")
_INPUT = flags.DEFINE_string("input", "", "translate: file of source sentences, one per line (default: stdin).")
_COMPARE = flags.DEFINE_list("compare", [], "compare: label=workdir entries whose results.json to plot.")
_OUTPUT = flags.DEFINE_string("output", "bleu_by_length.png", "compare: where to write the plot.")


@fetch.exit_on_missing_data
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config, workdir = command_line.validated(experiment.validate, _CONFIG.value), _WORKDIR.value
  train.distributed.initialize_from(config)
  if _MODE.value == "train":
    experiment.run(config, workdir)
  elif _MODE.value == "eval":
    experiment.evaluate_checkpoint(config, workdir)
  elif _MODE.value == "translate":
    if _INPUT.value and not os.path.isfile(_INPUT.value):
      raise DataError(f"--input={_INPUT.value}: no such file; give a file of source sentences, one per line, or "
                      "leave --input out to read them from stdin")
    model, params, source_tok, target_tok, saved = experiment.restore(workdir)
    lines = (open(_INPUT.value, encoding="utf-8") if _INPUT.value else sys.stdin).read().splitlines()
    sentences = [line for line in lines if line.strip()]  # blank lines stay blank, so outputs align with inputs
    translations = iter(experiment.translate(model, params, source_tok, target_tok, sentences, config.decode,
                                             pad_to=saved.data.pad_to, max_tokens=saved.data.max_tokens)
                        if sentences else [])
    for line in lines:
      print(next(translations).text if line.strip() else "", flush=True)
  else:
    entries = [entry.split("=", 1) for entry in _COMPARE.value]
    if not entries or any(len(entry) != 2 or not all(entry) for entry in entries):
      raise app.UsageError(f"--compare takes label=workdir entries (e.g. bahdanau=runs/a,luong=runs/b), "
                           f"got {_COMPARE.value}")
    experiment.compare(dict(entries), _OUTPUT.value)


if __name__ == "__main__":
  command_line.quiet_library_logs()
  app.run(train.one_line_errors(main))
