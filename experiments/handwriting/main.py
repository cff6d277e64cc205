"""Handwriting: `python -m experiments.handwriting.main --config=experiments/handwriting/configs/<name>.py`.

Recognition (BLSTM + CTC) or generation (Graves' MDN, optionally conditioned on text),
chosen by `config.task`. Override fields: `--config.num_steps=200`.
Modes:
  train (default)  trains (resuming from the workdir), evaluates on the test split, writes results.json and PNGs.
  recognize        prints the transcription of every sample of `--input` (InkML, UJI-style or strokes JSON),
                   one line each; `--output=DIR`: each sample's CTC alignment as a PNG.
  write            writes `--text` (a line, or a file of lines) with a synthesis workdir into `--output`.
  eval             scores the workdir's model (a recogniser's CER, a generator's NLL per point) on `--input` or on
                   the test split of `--config.data.*`, without training; writes results_<name>.json.
recognize, write and eval use the model the workdir's run saved (its config.json); `--config.*` overrides there
set decoding, sampling and data fields (`--config.eval.beam_size=16`, `--config.data.y_up=True`).
"""

import sys

from absl import app, flags

from rnn_jax.data import fetch
from rnn_jax import train
from experiments import command_line

command_line.require_experiments_extra(("matplotlib",))

from experiments.handwriting import handwriting, modes  # pylint: disable=wrong-import-position  # after the check

_CONFIG = command_line.config_flag(__file__, "recognize_synthetic")
_WORKDIR = flags.DEFINE_string("workdir", "runs/handwriting", "Checkpoints, metrics, TensorBoard, results, PNGs.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "recognize", "write", "eval"], "What to do.")
_INPUT = flags.DEFINE_string("input", "", "recognize, eval: an ink file (.inkml, .xml, .json).")
_OUTPUT = flags.DEFINE_string("output", "", "write (required), recognize (optional): folder for the pictures.")
_TEXT = flags.DEFINE_string("text", "", "write: the text to write, or a file of lines.")
_BIAS = flags.DEFINE_float("bias", 1.0, "write: sampling bias (0: as varied as the training data; 3: neat).")
_SAMPLES = flags.DEFINE_integer("samples", 1, "write: samples of each text.")
_SKIP_BAD = flags.DEFINE_bool("skip_bad", False, "recognize, eval: leave out (and count) bad samples of --input "
                              "and, in eval, samples labelled outside the model's alphabet, instead of stopping.")


@fetch.exit_on_missing_data
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  mode, workdir = _MODE.value, _WORKDIR.value
  command_line.validated(handwriting.validate, _CONFIG.value)
  if mode == "train":
    train.distributed.initialize_from(_CONFIG.value)
    handwriting.run(_CONFIG.value, workdir)
    return
  if mode == "recognize" and not _INPUT.value:
    raise app.UsageError("--mode=recognize needs --input=FILE (.inkml, .xml or .json)")
  if mode == "write" and not (_TEXT.value and _OUTPUT.value):
    raise app.UsageError('--mode=write needs --text="..." (or a file of lines) and --output=DIR')
  config = modes.run_config(workdir, _CONFIG.value, command_line.override_paths(sys.argv))
  if mode == "recognize":
    modes.recognize(workdir, config, _INPUT.value, _OUTPUT.value, _SKIP_BAD.value)
  elif mode == "write":
    modes.write(workdir, config, modes.texts_of(_TEXT.value), _BIAS.value, _SAMPLES.value, _OUTPUT.value)
  else:
    modes.evaluate(workdir, config, _INPUT.value, _SKIP_BAD.value)


if __name__ == "__main__":
  command_line.quiet_library_logs()
  app.run(train.one_line_errors(main))
