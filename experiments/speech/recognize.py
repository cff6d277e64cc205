"""A trained workdir as a recogniser: the digits of WAV files, and scores on a folder of named recordings.

  recognizer = load("runs/speech/dtmf")
  recognize_paths(recognizer, wav_paths("call.wav"))       # [("call.wav", "4096")]
  evaluate_folder(recognizer, "recordings/", workdir)      # files named {digits}_{speaker}_{index}.wav
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any, NamedTuple

import jax

from rnn_jax import ctc, train
from rnn_jax.data import spoken_digits
from rnn_jax.data.sources import DataError
from experiments.speech import features, model, speech, utterances


class Recognizer(NamedTuple):
  config: Any
  params: Any
  spec: features.Spec
  normalizer: features.Normalizer
  log_probs: Any   # jitted (params, feats, frames) -> (log_probs_BxTxV, lengths_B)


def load(workdir: str) -> Recognizer:
  """The model, features and normaliser a training run saved in `workdir`."""
  config = train.load_config(workdir)
  stats = speech.normalizer_path(workdir)
  if not os.path.exists(stats):
    raise train.NotTrainedError(f"no normalizer.json in {workdir}: train with this --workdir first")
  spec = features.spec_from_config(config.features)
  template = model.init(jax.random.PRNGKey(0), config.model, spec.size)
  params = train.restore_params(workdir, config, template)
  return Recognizer(config, params, spec, features.Normalizer.load(stats), speech.log_probs_fn(config))


def wav_paths(path: str) -> list[str]:
  """`path` itself if a file, else the folder's `*.wav` files in name order."""
  if os.path.isfile(path):
    return [path]
  paths = sorted(glob.glob(os.path.join(path, "*.wav")))
  if not paths:
    raise DataError(f"no .wav files at {path!r}: pass a WAV file or a folder holding some")
  return paths


def recognize_waves(recognizer: Recognizer, waves) -> list[str]:
  """The digit string of each wave, by prefix beam search of width `config.eval.beam_size`."""
  config, out = recognizer.config, []
  for i in range(0, len(waves), config.batch_size):
    feats, frames = speech.raw_features(waves[i:i + config.batch_size], recognizer.spec, config.data.pad_frames)
    log_probs, lengths = jax.device_get(
        recognizer.log_probs(recognizer.params, recognizer.normalizer.apply(feats, frames), frames))
    out += [model.labels_to_digits(l) for l in ctc.beam_search(log_probs, lengths, config.eval.beam_size)]
  return out


def read_as_trained(recognizer: Recognizer, path: str):
  """A WAV file as the training utterances were presented (`utterances.as_training_utterance`)."""
  return utterances.as_training_utterance(spoken_digits.read_wav(path), recognizer.config.data)


def recognize_paths(recognizer: Recognizer, paths) -> list[tuple[str, str]]:
  return list(zip(paths, recognize_waves(recognizer, [read_as_trained(recognizer, p) for p in paths])))


def digits_in_name(path: str) -> str:
  """The `{digits}` of `{digits}_{speaker}_{index}.wav`; one-line error for another name."""
  match = spoken_digits.RECORDING_NAME.match(os.path.basename(path))
  if not match:
    raise DataError(f"{path}: eval needs files named {{digits}}_{{speaker}}_{{index}}.wav, e.g. 4096_me_0.wav")
  return match.group(1)


def evaluate_folder(recognizer: Recognizer, folder: str, workdir: str) -> dict:
  """Digit error rate and string accuracy on `folder`'s recordings; also written to `workdir/eval.json`."""
  paths = wav_paths(folder)
  refs = [digits_in_name(p) for p in paths]
  hyps = recognize_waves(recognizer, [read_as_trained(recognizer, p) for p in paths])
  results = {"folder": os.path.abspath(folder), "files": len(paths),
             "der": ctc.error_rate(refs, hyps), "string_acc": ctc.sequence_accuracy(refs, hyps),
             "errors": [{"file": os.path.basename(p), "ref": r, "hyp": h}
                        for p, r, h in zip(paths, refs, hyps) if r != h]}
  with open(os.path.join(workdir, "eval.json"), "w") as f:
    json.dump(results, f, indent=1)
  return {k: v for k, v in results.items() if k != "errors"}
