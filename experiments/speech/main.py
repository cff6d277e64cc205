"""Speech: `python -m experiments.speech.main [--config=...] [--workdir=...] [--mode=...]`.

Modes: train (default; resumes from the workdir, then scores the test split into results.json), sweep (one
training run per depth and direction at an equal parameter count, in sub-workdirs; `config.sweep`), recognize
(prints the digits of `--input`, a WAV file or a folder of them), eval (scores `--input`, a folder of
`{digits}_{speaker}_{index}.wav` recordings). recognize and eval use the model the workdir's run saved.
Override any config field: `--config.model.num_layers=3 --config.model.cell=gru`.
"""

from absl import app, flags

from rnn_jax import train
from rnn_jax.data import fetch
from experiments import command_line

command_line.require_experiments_extra(("matplotlib",))

from experiments.speech import recognize, speech, sweep  # pylint: disable=wrong-import-position  # after the check

_CONFIG = command_line.config_flag(__file__, "dtmf")
_WORKDIR = flags.DEFINE_string("workdir", "runs/speech", "Checkpoints, metrics, TensorBoard, results.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "recognize", "eval", "sweep"], "What to do.")
_INPUT = flags.DEFINE_string("input", "", "recognize: a WAV file or a folder; eval: a folder of recordings.")


@fetch.exit_on_missing_data
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  command_line.validated(speech.validate, _CONFIG.value)
  if _MODE.value in ("train", "sweep"):
    (speech.run if _MODE.value == "train" else sweep.run)(_CONFIG.value, _WORKDIR.value)
    return
  if not _INPUT.value:
    raise app.UsageError(f"--mode={_MODE.value} needs --input=FILE.wav or a folder")
  paths = recognize.wav_paths(_INPUT.value)  # checked before the model loads
  recognizer = recognize.load(_WORKDIR.value)
  if _MODE.value == "recognize":
    for path, digits in recognize.recognize_paths(recognizer, paths):
      print(f"{path}\t{digits}")
  else:
    print(recognize.evaluate_folder(recognizer, _INPUT.value, _WORKDIR.value))


if __name__ == "__main__":
  command_line.quiet_library_logs()
  app.run(train.one_line_errors(main))
