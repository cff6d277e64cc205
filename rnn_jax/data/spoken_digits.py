"""Spoken-digit recordings through a tensorflow-datasets builder (array_record, no TensorFlow).

A folder of WAVs named `{digit}_{speaker}_{index}.wav` (any rate and channels, read as mono 8 kHz), such as the
Free Spoken Digit Dataset's recordings/ (`python -m rnn_jax.data.fetch fsdd`), is read once with
`scipy.io.wavfile` into a TFDS dataset in `data_dir` (prepared again when a file of the folder changes), then
from there:

  recordings = load_recordings("fetched:fsdd")     # {(speaker, digit, index): float32 wave in [-1, 1]}
  wave = read_wav("4096_me_0.wav")                 # one file
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re

import numpy as np
import tensorflow_datasets as tfds
from scipy import signal
from scipy.io import wavfile

from rnn_jax.data import fetch, sources
from rnn_jax.data.sources import DEFAULT_DATA_DIR, DataError

SAMPLE_RATE = 8000
RECORDING_NAME = re.compile(r"^(\d+)_([^_]+)_(\d+)\.wav$")   # {digits}_{speaker}_{index}.wav
SPLIT = "recordings"   # the builder's one split: the experiments split by speaker or index themselves


def read_wav(path: str) -> np.ndarray:
  """A WAV's audio as mono 8 kHz float32 in [-1, 1]: channels averaged, another rate resampled (polyphase,
  anti-aliased: a 44.1 kHz phone recording reads as the dataset's do); DataError (one line) for a file that is
  not a WAV."""
  try:
    rate, samples = wavfile.read(path)
  except ValueError as e:  # scipy's reader names what it found instead of a RIFF/WAVE header
    raise DataError(f"{path}: not a WAV file ({e})") from None
  if samples.dtype == np.uint8:  # 8-bit WAVs are unsigned, silence at 128
    wave = (samples.astype(np.float32) - 128.0) / 128.0
  elif np.issubdtype(samples.dtype, np.integer):
    wave = samples / float(np.iinfo(samples.dtype).max + 1)
  else:
    wave = samples
  if wave.ndim == 2:
    wave = wave.mean(axis=1)
  if rate != SAMPLE_RATE:
    common = math.gcd(rate, SAMPLE_RATE)
    wave = signal.resample_poly(wave, SAMPLE_RATE // common, rate // common)
  return np.asarray(wave, np.float32)


def single_digit_files(folder: str) -> list[str]:
  """The names of `folder`'s `{digit}_{speaker}_{index}.wav` files of one digit, sorted; DataError if none."""
  names = sorted(n for n in os.listdir(folder) if (m := RECORDING_NAME.match(n)) and len(m.group(1)) == 1)
  if not names:
    raise DataError(f"no {{digit}}_{{speaker}}_{{index}}.wav recordings in {folder!r}: pass the Free "
                            "Spoken Digit Dataset's recordings/ folder (python -m rnn_jax.data.fetch fsdd)")
  return names


@dataclasses.dataclass
class RecordingsConfig(tfds.core.BuilderConfig):
  path: str = ""   # the folder of recordings


class SpokenDigits(tfds.core.GeneratorBasedBuilder):
  """Every single-digit recording of a folder: its samples, digit, speaker and index."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, description="Spoken digits, {digit}_{speaker}_{index}.wav",
                                 features=tfds.features.FeaturesDict({
                                     "audio": tfds.features.Tensor(shape=(None,), dtype=np.float32),
                                     "digit": tfds.features.Scalar(dtype=np.int32),
                                     "speaker": tfds.features.Text(),
                                     "index": tfds.features.Scalar(dtype=np.int32)}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {SPLIT: self._generate_examples(single_digit_files(self.builder_config.path))}

  def _generate_examples(self, names):
    for name in names:
      digit, speaker, index = RECORDING_NAME.match(name).groups()
      yield name, {"audio": read_wav(os.path.join(self.builder_config.path, name)), "digit": int(digit),
                   "speaker": speaker, "index": int(index)}


def _config_for(folder: str) -> RecordingsConfig:
  """A config whose name changes whenever a file of `folder` is added, removed or rewritten."""
  stamp = [(n, os.path.getsize(os.path.join(folder, n)), os.path.getmtime(os.path.join(folder, n)))
           for n in single_digit_files(folder)]
  digest = hashlib.sha1(json.dumps([folder, stamp]).encode()).hexdigest()[:16]
  return RecordingsConfig(name="c" + digest, path=folder)


def load_recordings(path: str, data_dir: str | None = None) -> dict[tuple[str, int, int], np.ndarray]:
  """`{(speaker, digit, index): wave}` of the folder `path` (or `fetched:fsdd`), prepared once in `data_dir`."""
  folder = os.path.abspath(fetch.resolve(path))
  if not os.path.isdir(folder):
    raise DataError(f"no folder of recordings at {path!r}: pass the Free Spoken Digit Dataset's "
                            "recordings/ folder (python -m rnn_jax.data.fetch fsdd)")
  builder = sources.prepared(lambda: SpokenDigits(config=_config_for(folder), data_dir=data_dir or DEFAULT_DATA_DIR))
  return {(sources.as_str(ex["speaker"]), int(ex["digit"]), int(ex["index"])): np.asarray(ex["audio"], np.float32)
          for ex in sources.read_all(builder.as_data_source(split=SPLIT))}
