"""Online handwriting (pen strokes) through tensorflow-datasets builders (array_record, no TensorFlow).

A sample is a sequence of points `(dx, dy, pen_up)`: offsets from the previous point
(the first point's offset is zero), y up, `pen_up = 1` on the last point of each stroke;
plus its transcription and a writer id. Three builders write the same features:

  SyntheticHandwriting   Hershey-font handwriting (rnn_jax.data.hershey), the embedded default
  UjiDigits              UJI Pen Characters v2 digits, split by writer (no writer in two splits)
  IamOnDB                IAM-OnDB lines from a manual dir (lineStrokes/ XML + ascii/ transcriptions)

  splits = load_splits("synthetic")                          # {"train", "valid", "test"} -> list[Sample]
  splits = load_splits("uji", path="fetched:uji_pen_digits")  # python -m rnn_jax.data.fetch uji_pen_digits
  splits = load_splits("iam", path="/data/IAM-OnDB")
  norm = Normalizer.fit(splits["train"])                     # mean/std of (dx, dy) on the train split
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import re
import xml.etree.ElementTree as ET
from typing import NamedTuple, Sequence

import numpy as np
import tensorflow_datasets as tfds

from rnn_jax.data import fetch, hershey, sources
from rnn_jax.data.sources import DEFAULT_DATA_DIR, SPLITS, DataError


class Sample(NamedTuple):
  points: np.ndarray   # [N, 3] float32 (dx, dy, pen_up)
  text: str
  writer: str


def to_offsets(xy_Nx2: np.ndarray, pen_up_N: np.ndarray) -> np.ndarray:
  """Absolute points and pen-up flags -> `[N, 3]` float32 offsets (first offset zero)."""
  xy = np.asarray(xy_Nx2, np.float64)
  deltas = np.diff(xy, axis=0, prepend=xy[:1])
  return np.concatenate([deltas, np.asarray(pen_up_N, np.float64)[:, None]], axis=1).astype(np.float32)


def from_strokes(strokes: Sequence[np.ndarray]) -> np.ndarray:
  """A list of `[n_i, 2]` absolute strokes -> `[N, 3]` offsets."""
  strokes = [np.asarray(s, np.float64).reshape(-1, 2) for s in strokes if len(s)]
  if not strokes:
    raise ValueError("a sample needs at least one non-empty stroke")
  pen_up = np.concatenate([np.eye(1, len(s), len(s) - 1)[0] for s in strokes])
  return to_offsets(np.concatenate(strokes), pen_up)


def to_strokes(points_Nx3: np.ndarray) -> list[np.ndarray]:
  """`[N, 3]` offsets -> list of `[n_i, 2]` absolute strokes (split after every pen-up)."""
  points = np.asarray(points_Nx3, np.float64)
  xy = np.cumsum(points[:, :2], axis=0)
  ends = np.flatnonzero(points[:, 2] > 0.5) + 1
  return [s for s in np.split(xy, ends) if len(s)]


def resample(points_Nx3: np.ndarray, step: float) -> np.ndarray:
  """Each stroke resampled at equal arc-length `step` (its ends kept); a fixed pen speed."""
  return from_strokes([hershey.resample_polyline(stroke, step)[0] for stroke in to_strokes(points_Nx3)])


@dataclasses.dataclass(frozen=True)
class Normalizer:
  """Standardises `(dx, dy)` with train-split statistics; pen_up is left as is."""
  mean: tuple
  std: tuple

  @classmethod
  def fit(cls, samples: Sequence[Sample]) -> "Normalizer":
    xy = np.concatenate([s.points[1:, :2] for s in samples]).astype(np.float64)
    return cls(tuple(xy.mean(0).tolist()), tuple(xy.std(0).tolist()))

  def apply(self, points_Nx3: np.ndarray) -> np.ndarray:
    out = np.array(points_Nx3, np.float32)
    out[:, :2] = (out[:, :2] - np.asarray(self.mean)) / np.asarray(self.std)
    return out

  def invert(self, points_xN3: np.ndarray) -> np.ndarray:
    out = np.array(points_xN3, np.float32)
    out[..., :2] = out[..., :2] * np.asarray(self.std) + np.asarray(self.mean)
    return out


def _features():
  return tfds.features.FeaturesDict({
      "points": tfds.features.Tensor(shape=(None, 3), dtype=np.float32),
      "text": tfds.features.Text(),
      "writer": tfds.features.Text(),
  })


# ------------------------------------------------------------------ synthetic (Hershey fonts)


@dataclasses.dataclass
class SyntheticConfig(tfds.core.BuilderConfig):
  """Random lowercase words written with `hershey.synthesize`; each example seeded by (seed, split, index)."""
  seed: int = 0
  sizes: tuple = (20000, 1000, 1000)   # train, valid, test
  charset: str = "abcdefghijklmnopqrstuvwxyz"
  min_length: int = 3
  max_length: int = 7
  num_words: int = 1


class SyntheticHandwriting(tfds.core.GeneratorBasedBuilder):
  """Handwriting synthesised from Hershey script fonts (see rnn_jax.data.hershey)."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, description="Synthetic Hershey-font handwriting",
                                 features=_features())

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(k, n) for k, (split, n) in enumerate(zip(SPLITS, self.builder_config.sizes))}

  def _generate_examples(self, split_index, count):
    cfg = self.builder_config
    for i in range(count):
      rng = np.random.default_rng([cfg.seed, split_index, i])
      text = hershey.random_text(rng, cfg.charset, cfg.min_length, cfg.max_length, cfg.num_words)
      yield i, {"points": hershey.synthesize(text, rng).points, "text": text, "writer": f"synthetic-{split_index}-{i}"}


def synthetic_config(**fields) -> SyntheticConfig:
  base = {f.name for f in dataclasses.fields(tfds.core.BuilderConfig)}
  fields = {f.name: f.default for f in dataclasses.fields(SyntheticConfig) if f.name not in base} | fields
  fields["sizes"] = tuple(fields["sizes"])
  return SyntheticConfig(name=sources.config_name(fields), **fields)


# ------------------------------------------------------------------ UJI Pen Characters v2 digits


@dataclasses.dataclass
class UjiConfig(tfds.core.BuilderConfig):
  """`path` to ujipenchars2_digits.json; the last writers (by index) are the valid and test splits."""
  path: str = ""
  valid_writers: int = 6
  test_writers: int = 12


UJI_SAMPLES_PER_WRITER = 2


def uji_writer(sample_index: int) -> int:
  """The writer of the i-th sample of a digit in the JSON: samples are stored writer by writer, two each.

  (Checked on the data: bounding-box heights of samples at the same index correlate 0.86
  across digits, and 0.86 between samples 2k and 2k+1, against 0.23 between 2k+1 and 2k+2.)
  """
  return sample_index // UJI_SAMPLES_PER_WRITER


class UjiDigits(tfds.core.GeneratorBasedBuilder):
  """UJI Pen Characters v2, digits 0-9 (60 writers x 2 x 10), y flipped to point up."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, description="UJI Pen Characters v2 digits", features=_features())

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    raw = _read_uji(cfg.path)
    num_writers = max(uji_writer(len(samples) - 1) + 1 for samples in raw.values())
    first_valid = num_writers - cfg.valid_writers - cfg.test_writers
    if first_valid <= 0:
      raise DataError(f"{cfg.path} holds samples of {num_writers} writers: too few for {cfg.valid_writers} valid "
                      f"and {cfg.test_writers} test writers (config.data.uji) and some to train on")
    ranges = {"train": range(0, first_valid), "valid": range(first_valid, num_writers - cfg.test_writers),
              "test": range(num_writers - cfg.test_writers, num_writers)}
    return {split: self._generate_examples(raw, set(writers)) for split, writers in ranges.items()}

  def _generate_examples(self, raw, writers):
    for label in sorted(raw):
      for i, sample in enumerate(raw[label]):
        if uji_writer(i) not in writers:
          continue
        strokes = [_uji_stroke(s, self.builder_config.path, f"digit {label} sample {i} stroke {k}")
                   for k, s in enumerate(sample)]
        yield f"{label}-{i}", {"points": from_strokes(strokes), "text": label, "writer": f"uji-{uji_writer(i):02d}"}


def _read_uji(path: str) -> dict:
  """The JSON's `{digit: [samples]}` (`rawData`); DataError naming the file if it cannot be that."""
  try:
    with open(path, encoding="utf-8") as f:
      raw = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise DataError(f"{path} is not valid JSON ({e}): the file may be truncated; download it again") from None
  if not isinstance(raw, dict) or not isinstance(raw.get("rawData"), dict) or not raw["rawData"]:
    raise DataError(f"{path} has no 'rawData' object of digit samples: expected the UJI Pen Characters v2 digits "
                    "JSON ({\"rawData\": {\"0\": [samples], ...}})")
  return raw["rawData"]


def _uji_stroke(points, path: str, where: str) -> np.ndarray:
  """One stroke's `[n, 2]` points, y flipped to point up; DataError naming the file and the stroke if empty or
  not made of (x, y) pairs."""
  stroke = np.asarray(points, np.float64)
  if stroke.ndim != 2 or stroke.shape[0] == 0 or stroke.shape[1] != 2:
    raise DataError(f"{path}: {where} has shape {stroke.shape}, not [points, 2] with at least one point")
  return _dedupe(stroke * np.array([1.0, -1.0]))


def _dedupe(stroke_Nx2):
  """Drops repeated consecutive points (the tablet reports some twice)."""
  keep = np.concatenate([[True], np.any(np.diff(stroke_Nx2, axis=0) != 0, axis=1)])
  return stroke_Nx2[keep]


# ------------------------------------------------------------------ IAM-OnDB (manual download)


@dataclasses.dataclass
class IamConfig(tfds.core.BuilderConfig):
  """`path`: the IAM-OnDB root holding lineStrokes/ and ascii/ (and optionally the task split files)."""
  path: str = ""


IAM_SPLIT_FILES = {"train": ("trainset.txt",), "valid": ("testset_v.txt",), "test": ("testset_t.txt", "testset_f.txt")}


def parse_iam_strokes(xml_path: str) -> np.ndarray:
  """A lineStrokes XML file -> `[N, 3]` offsets (whiteboard y points down; flipped here)."""
  root = ET.parse(xml_path).getroot()
  strokes = [np.array([[float(p.get("x")), -float(p.get("y"))] for p in stroke.iter("Point")])
             for stroke in root.iter("Stroke")]
  return from_strokes([_dedupe(s) for s in strokes if len(s)])


def parse_iam_transcription(ascii_path: str) -> list[str]:
  """The lines after `CSR:` in an ascii/ transcription file (line i is lineStrokes file i+1)."""
  with open(ascii_path, encoding="latin-1") as f:
    text = f.read()
  if "CSR:" not in text:
    raise ValueError(f"{ascii_path} has no 'CSR:' section")
  return [line.strip() for line in text.split("CSR:", 1)[1].strip().splitlines() if line.strip()]


def _iam_split_of_forms(root: str) -> dict[str, str] | None:
  """form id (e.g. a01-000u) -> split, from the IAM-OnDB task files if present."""
  forms = {}
  for split, names in IAM_SPLIT_FILES.items():
    for name in names:
      path = os.path.join(root, name)
      if os.path.exists(path):
        with open(path) as f:
          forms.update({line.strip(): split for line in f if line.strip()})
  return forms or None


def _stable_split(form_id: str) -> str:
  """80/10/10 by a hash of the form id, for a manual dir without task files."""
  bucket = int(hashlib.md5(form_id.encode()).hexdigest(), 16) % 10
  return "test" if bucket == 0 else "valid" if bucket == 1 else "train"


class IamOnDB(tfds.core.GeneratorBasedBuilder):
  """IAM On-Line Handwriting Database lines (registration required; point `path` at the unpacked data).

  Expects `lineStrokes/<a01>/<a01-000>/<a01-000u>-<NN>.xml` and
  `ascii/<a01>/<a01-000>/<a01-000u>.txt`; uses trainset.txt / testset_v.txt /
  testset_t.txt + testset_f.txt when present, else a stable 80/10/10 split by form.
  The writer is the form id (the corpus maps forms to writers in a separate file).
  """

  VERSION = tfds.core.Version("1.0.0")
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Register at https://fki.tic.heia-fr.ch/databases/iam-on-line-handwriting-database, "\
                                 "download lineStrokes-all.tar.gz and ascii-all.tar.gz and unpack both into `path`."

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, description="IAM-OnDB lines", features=_features())

  def _split_generators(self, dl_manager):
    del dl_manager
    root = self.builder_config.path
    files = sorted(glob.glob(os.path.join(root, "lineStrokes", "*", "*", "*.xml")))
    if not files:
      raise DataError(f"no lineStrokes/*/*/*.xml under {root!r}. {self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    forms = _iam_split_of_forms(root)
    by_split = {split: [] for split in SPLITS}
    for path in files:
      form = re.sub(r"-\d+$", "", os.path.splitext(os.path.basename(path))[0])
      split = _stable_split(form) if forms is None else forms.get(form)
      if split is not None:
        by_split[split].append(path)
    # TFDS cannot write an empty split; a split without lines is absent (and loads as []).
    return {split: self._generate_examples(root, paths) for split, paths in by_split.items() if paths}

  def _generate_examples(self, root, paths):
    transcriptions = {}
    for path in paths:
      line_id = os.path.splitext(os.path.basename(path))[0]
      form, line = re.match(r"(.*)-(\d+)$", line_id).groups()
      parts = os.path.normpath(path).split(os.sep)
      ascii_path = os.path.join(root, "ascii", parts[-3], parts[-2], form + ".txt")
      if ascii_path not in transcriptions:
        transcriptions[ascii_path] = parse_iam_transcription(ascii_path)
      lines = transcriptions[ascii_path]
      if int(line) > len(lines):
        raise ValueError(f"{path}: line {int(line)} but {ascii_path} has {len(lines)} CSR lines")
      yield line_id, {"points": parse_iam_strokes(path), "text": lines[int(line) - 1], "writer": form}


# ------------------------------------------------------------------ loading


def _builder(source: str, path: str, data_dir: str, config_fields: dict) -> tfds.core.DatasetBuilder:
  """The (unprepared) builder of a stroke dataset; see `load_splits`."""
  if source == "synthetic":
    return SyntheticHandwriting(config=synthetic_config(**config_fields), data_dir=data_dir)
  if source not in ("uji", "iam"):
    raise ValueError(f"unknown stroke data source {source!r}; expected 'synthetic', 'uji' or 'iam'")
  path = fetch.resolve(path)
  if not os.path.exists(path):
    raise DataError(f"{source} data not found at {path!r}")
  abspath = os.path.abspath(path)
  name = sources.config_name([abspath, config_fields], [abspath])
  if source == "uji":
    return UjiDigits(config=UjiConfig(name=name, path=abspath, **config_fields), data_dir=data_dir)
  return IamOnDB(config=IamConfig(name=name, path=abspath, **config_fields), data_dir=data_dir)


def load_splits(source: str = "synthetic", path: str = "", data_dir: str | None = None,
                **config_fields) -> dict[str, list[Sample]]:
  """Prepares (once, cached in `data_dir`) and reads a stroke dataset: `{"train", "valid", "test"} -> samples`.

  source: "synthetic" (fields of SyntheticConfig as keyword arguments), "uji" (`path` to
    the JSON or "fetched:uji_pen_digits"; `valid_writers`, `test_writers`) or "iam" (`path` to the manual dir).
  """
  builder = sources.prepared(lambda: _builder(source, path, data_dir or DEFAULT_DATA_DIR, config_fields))
  out = {}
  for split in SPLITS:
    if split not in builder.info.splits:
      out[split] = []
      continue
    out[split] = [Sample(np.asarray(ex["points"], np.float32), sources.as_str(ex["text"]),
                         sources.as_str(ex["writer"])) for ex in sources.read_all(builder.as_data_source(split=split))]
  return out
