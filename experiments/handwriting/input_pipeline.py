"""Stroke samples -> normalised, padded, length-bucketed batches (numpy; pure functions of the step).

  data = load(config.data)                    # Data: splits of Examples, alphabet, normalizer
  batch_fn = train_batches(data.splits["train"], batch_size, seed, pad_multiple, augment)
  batch = batch_fn(step)                      # dict of numpy arrays; the same step gives the same batch

Batch fields: `points [B, T, 3]` (normalised), `lengths [B]`, `labels [B, L]` (class ids,
0 is the CTC blank), `label_lengths [B]`, `text [B, L + 1, C]` (one-hot characters for the
synthesis window, with one empty slot after the end).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

import numpy as np

from rnn_jax.data import buckets, strokes

BUCKET_BATCHES = 16  # batches per length-sorted chunk


class Example(NamedTuple):
  points: np.ndarray   # [N, 3] float32, normalised
  labels: np.ndarray   # [n] int32 class ids (1..V-1)
  text: str
  writer: str


@dataclasses.dataclass(frozen=True)
class Alphabet:
  """Characters -> class ids 1..len; 0 is the CTC blank."""
  chars: str

  @classmethod
  def from_texts(cls, texts: Sequence[str]) -> "Alphabet":
    return cls("".join(sorted(set("".join(texts)))))

  @property
  def num_classes(self) -> int:
    return len(self.chars) + 1

  def encode(self, text: str) -> np.ndarray:
    index = {c: i + 1 for i, c in enumerate(self.chars)}
    unknown = sorted(set(text) - set(index))
    if unknown:
      raise ValueError(f"characters {unknown} are not in the alphabet {self.chars!r}")
    return np.asarray([index[c] for c in text], np.int32)

  def decode(self, labels) -> str:
    return "".join(self.chars[int(i) - 1] for i in labels if 0 < int(i) <= len(self.chars))


class Data(NamedTuple):
  splits: dict          # split -> list[Example]
  alphabet: Alphabet
  normalizer: strokes.Normalizer
  max_label_length: int


def preprocess(points_Nx3: np.ndarray, height_normalize: bool, resample_step: float) -> np.ndarray:
  """Optionally scales a sample to unit height and resamples it at a fixed pen speed."""
  if height_normalize:
    ys = np.cumsum(points_Nx3[:, 1])
    points_Nx3 = np.array(points_Nx3, np.float32)
    points_Nx3[:, :2] /= max(float(np.ptp(ys)), 1e-6)
  if resample_step > 0:
    points_Nx3 = strokes.resample(points_Nx3, resample_step)
  return points_Nx3


def raw_splits(cfg) -> dict[str, list[strokes.Sample]]:
  """The splits of the stroke dataset `cfg` (config.data) names, as stored (not preprocessed)."""
  if cfg.source == "synthetic":
    return strokes.load_splits("synthetic", data_dir=cfg.tfds_dir or None, **cfg.synthetic.to_dict())
  if cfg.source == "uji":
    return strokes.load_splits("uji", path=cfg.path, data_dir=cfg.tfds_dir or None, **cfg.uji.to_dict())
  return strokes.load_splits(cfg.source, path=cfg.path, data_dir=cfg.tfds_dir or None)


def read_splits(cfg) -> dict[str, list[strokes.Sample]]:
  """The splits of the stroke dataset `cfg` (config.data) names, preprocessed (raw units, not normalised)."""
  return {split: [s._replace(points=preprocess(s.points, cfg.height_normalize, cfg.resample_step)) for s in samples]
          for split, samples in raw_splits(cfg).items()}


def load(cfg) -> Data:
  """Reads the stroke dataset `cfg` (config.data) names, preprocesses and normalises it with train statistics."""
  raw = read_splits(cfg)
  normalizer = strokes.Normalizer.fit(raw["train"])
  # Characters from every split (only the set, no statistics), so a rare test character cannot fail encoding.
  alphabet = Alphabet.from_texts([s.text for samples in raw.values() for s in samples])
  splits = {split: [Example(normalizer.apply(s.points), alphabet.encode(s.text), s.text, s.writer)
                    for s in samples] for split, samples in raw.items()}
  max_label = max(len(e.labels) for samples in splits.values() for e in samples)
  return Data(splits, alphabet, normalizer, max_label)


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def pad_batch(examples: Sequence[Example], alphabet_size: int, max_label_length: int, pad_multiple: int) -> dict:
  """Pads points to a multiple of `pad_multiple` steps and labels to `max_label_length`."""
  steps = _round_up(max(len(e.points) for e in examples), pad_multiple)
  batch = len(examples)
  points = np.zeros((batch, steps, 3), np.float32)
  labels = np.zeros((batch, max_label_length), np.int32)
  for i, e in enumerate(examples):
    points[i, :len(e.points)] = e.points
    labels[i, :len(e.labels)] = e.labels
  text = np.eye(alphabet_size + 1, dtype=np.float32)[labels][:, :, 1:]   # id 0 (padding) -> all zeros
  return {"points": points, "lengths": np.array([len(e.points) for e in examples], np.int32),
          "labels": labels, "label_lengths": np.array([len(e.labels) for e in examples], np.int32),
          "text": np.pad(text, ((0, 0), (0, 1), (0, 0)))}


def augment(points_Nx3: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
  """A random affine distortion (scale, aspect, shear, rotation) of the offsets."""
  if strength <= 0:
    return points_Nx3
  scale = np.exp(rng.normal(0, 0.15 * strength))
  aspect = np.exp(rng.normal(0, 0.1 * strength))
  shear, angle = rng.normal(0, 0.2 * strength), rng.normal(0, 0.1 * strength)
  rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
  matrix = scale * rotation @ np.array([[aspect, shear], [0.0, 1.0]])
  out = np.array(points_Nx3, np.float32)
  out[:, :2] = out[:, :2] @ matrix.T
  return out


def train_batches(examples: Sequence[Example], alphabet_size: int, max_label_length: int, batch_size: int,
                  seed: int, pad_multiple: int, augment_strength: float = 0.0):
  """`step -> batch`, deterministic in the step (length-bucketed: `rnn_jax.data.buckets`), and the steps per epoch."""
  bucketed = buckets.Bucketed([len(e.points) for e in examples], batch_size, seed, BUCKET_BATCHES)

  def batch_at(step: int) -> dict:
    chosen = [examples[i] for i in bucketed(step)]
    if augment_strength > 0:
      rng = np.random.default_rng([seed, *divmod(step, bucketed.steps_per_epoch), 1])
      chosen = [e._replace(points=augment(e.points, rng, augment_strength)) for e in chosen]
    return pad_batch(chosen, alphabet_size, max_label_length, pad_multiple)

  return batch_at, bucketed.steps_per_epoch


def eval_batches(examples: Sequence[Example], alphabet_size: int, max_label_length: int, batch_size: int,
                 pad_multiple: int):
  """Batches over a whole split in a length-sorted order; the last one padded with copies (weight 0).

  Yields `(batch, weights_B, indices_B)`.
  """
  for idx, idx_full in buckets.sorted_batches([len(e.points) for e in examples], batch_size):
    weights = np.ones(batch_size, np.float32)
    weights[len(idx):] = 0.0
    yield pad_batch([examples[i] for i in idx_full], alphabet_size, max_label_length, pad_multiple), weights, idx
