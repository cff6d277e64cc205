"""Spoken-digit utterances, each deterministic per (seed, split, index): synthetic keypad tones or FSDD recordings.

  source = make_source(config.data)          # (split, index) -> Utterance
  utt = source("train", 12)                  # utt.wave (float32, 8 kHz), utt.digits, utt.spans

DTMF (embedded, no download): each digit is its telephone-keypad pair of sine tones (ITU-T Q.23) with a random
duration, level twist and slow frequency drift, separated by random pauses, at a random amplitude, in white noise
`snr_db` below amplitude / sqrt(2). Connected FSDD digits: 1-7 recordings of one speaker of the split, each scaled
to a random peak, joined by random short pauses, in white noise `snr_db` below the lowest peak. Recordings are
read from a folder of `{digit}_{speaker}_{index}.wav` files (Free Spoken Digit Dataset, 8 kHz mono) through
`rnn_jax.data.spoken_digits`, and split by speaker or by recording index (`split_recordings`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from rnn_jax.data import spoken_digits

SAMPLE_RATE = spoken_digits.SAMPLE_RATE
SPLITS = ("train", "valid", "test")
KEYPAD_HZ = {1: (697, 1209), 2: (697, 1336), 3: (697, 1477), 4: (770, 1209), 5: (770, 1336), 6: (770, 1477),
             7: (852, 1209), 8: (852, 1336), 9: (852, 1477), 0: (941, 1336)}


class Utterance(NamedTuple):
  wave: np.ndarray    # [N] float32 samples at SAMPLE_RATE
  digits: np.ndarray  # [L] int32, 0-9
  spans: np.ndarray   # [L, 2] the start and end sample of each digit


def rng_for(seed: int, split: str, index: int) -> np.random.Generator:
  return np.random.default_rng([seed, SPLITS.index(split), index])


def _ms(rng, bounds) -> int:
  return int(rng.uniform(*bounds) * SAMPLE_RATE / 1000)


def _join(rng, pieces, cfg, noise: float) -> tuple[np.ndarray, np.ndarray]:
  """Pieces joined by `cfg.pause_ms` pauses, framed by `cfg.edge_ms` of silence, plus white noise of RMS `noise`."""
  parts, spans = [np.zeros(_ms(rng, cfg.edge_ms), np.float32)], []
  at = len(parts[0])
  for i, piece in enumerate(pieces):
    if i:
      parts.append(np.zeros(_ms(rng, cfg.pause_ms), np.float32))
      at += len(parts[-1])
    parts.append(piece.astype(np.float32))
    spans.append((at, at + len(piece)))
    at += len(piece)
  parts.append(np.zeros(_ms(rng, cfg.edge_ms), np.float32))
  wave = np.concatenate(parts)
  wave += (noise * rng.standard_normal(len(wave))).astype(np.float32)
  return wave, np.asarray(spans, np.int64).reshape(-1, 2)


def scale_to_peak(wave, peak: float) -> np.ndarray:
  return wave * (peak / max(np.abs(wave).max(), 1e-6))


def noise_rms(cfg, snr_db: float, amplitude: float = 0.0) -> float:
  """The white noise RMS `snr_db` below the tones' `amplitude` / sqrt(2) (dtmf) or below `cfg.fsdd.peak[0]` (fsdd)."""
  reference = amplitude / np.sqrt(2) if cfg.source == "dtmf" else cfg.fsdd.peak[0]
  return reference / 10 ** (snr_db / 20)


def as_training_utterance(wave, cfg) -> np.ndarray:
  """A recording of any level presented as the utterances of `cfg` (config.data) were in training: scaled to the
  middle of their peaks, framed by the middle of `edge_ms` of silence, in white noise at the middle of `snr_db`
  (seeded: the same file always gives the same wave). A model trained only on noisy, framed utterances reads a
  clean, tightly cut recording worse."""
  middle = lambda bounds: (bounds[0] + bounds[1]) / 2
  peak = middle(cfg.dtmf.amplitude if cfg.source == "dtmf" else cfg.fsdd.peak)
  edge = np.zeros(int(middle(cfg.edge_ms) * SAMPLE_RATE / 1000), np.float32)
  framed = np.concatenate([edge, scale_to_peak(np.asarray(wave, np.float32), peak), edge])
  noise = np.random.default_rng(0).standard_normal(len(framed)) * noise_rms(cfg, middle(cfg.snr_db), peak)
  return framed + noise.astype(np.float32)


def _digits(rng, cfg) -> np.ndarray:
  return rng.integers(0, 10, rng.integers(cfg.min_digits, cfg.max_digits + 1)).astype(np.int32)


def dtmf_tone(rng, digit: int, num_samples: int, drift: float) -> np.ndarray:
  """The keypad tone pair of `digit`, unit peak; each frequency drifts linearly by up to `drift` (relative)."""
  t = np.arange(num_samples) / SAMPLE_RATE
  wave = np.zeros(num_samples)
  for hz, level in zip(KEYPAD_HZ[digit], (1.0, 10 ** (rng.uniform(-3, 3) / 20))):
    start, end = hz * (1 + rng.uniform(-drift, drift, 2))
    phase = 2 * np.pi * (start * t + (end - start) * t ** 2 / (2 * t[-1] + 1e-9)) + rng.uniform(0, 2 * np.pi)
    wave += level * np.sin(phase)
  return wave / np.abs(wave).max()


def dtmf_utterance(cfg, split: str, index: int) -> Utterance:
  """Keypad tones of 1..max_digits random digits (`cfg`: config.data)."""
  rng = rng_for(cfg.seed, split, index)
  digits = _digits(rng, cfg)
  amplitude = rng.uniform(*cfg.dtmf.amplitude)
  tones = [amplitude * dtmf_tone(rng, int(d), _ms(rng, cfg.dtmf.tone_ms), cfg.dtmf.drift) for d in digits]
  wave, spans = _join(rng, tones, cfg, noise_rms(cfg, rng.uniform(*cfg.snr_db), amplitude))
  return Utterance(wave, digits, spans)


def split_recordings(recordings, cfg) -> dict[str, dict[str, dict[int, list[np.ndarray]]]]:
  """`{split: {speaker: {digit: [wave, ...] in index order}}}` from `{(speaker, digit, index): wave}`.

  `cfg.fsdd.split`: "speakers" (`cfg.fsdd.test_speakers` test, `cfg.fsdd.valid_speakers` validate, the rest
  train; with no valid_speakers, the training speakers' recordings with indices in `cfg.fsdd.valid_indices`
  validate) or "indices" (every speaker in every split: recording indices in `[start, end)` of
  `cfg.fsdd.test_indices` test, of `cfg.fsdd.valid_indices` validate, the rest train).
  """
  speakers = sorted({speaker for speaker, _, _ in recordings})
  inside = lambda index, bounds: bounds[0] <= index < bounds[1]
  if cfg.fsdd.split == "speakers":
    by_speaker = split_speakers(speakers, cfg)

    def split_of(speaker, index):
      if speaker in by_speaker["train"] and not cfg.fsdd.valid_speakers and inside(index, cfg.fsdd.valid_indices):
        return "valid"
      return next(s for s in SPLITS if speaker in by_speaker[s])
  else:
    split_of = lambda speaker, index: ("test" if inside(index, cfg.fsdd.test_indices) else
                                       "valid" if inside(index, cfg.fsdd.valid_indices) else "train")
  pools = {split: {} for split in SPLITS}
  for (speaker, digit, index), wave in sorted(recordings.items(), key=lambda item: item[0]):
    pools[split_of(speaker, index)].setdefault(speaker, {}).setdefault(digit, []).append(wave)
  for split, pool in pools.items():
    if any(len(digits) < 10 for digits in pool.values()) or not pool:
      raise ValueError(f"config.data.fsdd: the {split} split lacks recordings of some digit; check split, "
                       f"*_speakers and *_indices")
  return pools


def split_speakers(speakers, cfg) -> dict[str, list[str]]:
  """Speakers of each split: `cfg.fsdd.valid_speakers` (may be empty), `cfg.fsdd.test_speakers`, the rest train."""
  if not cfg.fsdd.test_speakers:
    raise ValueError("config.data.fsdd: test_speakers needs at least one speaker")
  held_out = list(cfg.fsdd.valid_speakers) + list(cfg.fsdd.test_speakers)
  unknown = sorted(set(held_out) - set(speakers))
  if unknown:
    raise ValueError(f"config.data.fsdd: speakers {unknown} have no recordings; present: {sorted(speakers)}")
  train = sorted(set(speakers) - set(held_out))
  if not train:
    raise ValueError("config.data.fsdd: every speaker is held out; leave at least one for training")
  return {"train": train, "valid": list(cfg.fsdd.valid_speakers), "test": list(cfg.fsdd.test_speakers)}


def connected_utterance(pools, cfg, split: str, index: int) -> Utterance:
  """1..max_digits recordings of one of the split's speakers (`pools`: `split_recordings`), joined by pauses,
  in light noise."""
  rng = rng_for(cfg.seed, split, index)
  speakers = sorted(pools[split])
  speaker = speakers[rng.integers(len(speakers))]
  digits = _digits(rng, cfg)
  pieces = []
  for digit in digits:
    takes = pools[split][speaker][int(digit)]
    take = takes[rng.integers(len(takes))]
    pieces.append(scale_to_peak(take, rng.uniform(*cfg.fsdd.peak)))
  wave, spans = _join(rng, pieces, cfg, noise_rms(cfg, rng.uniform(*cfg.snr_db)))
  return Utterance(wave, digits, spans)


def make_source(cfg) -> Callable[[str, int], Utterance]:
  """`(split, index) -> Utterance` for `cfg.source` ("dtmf" or "fsdd"; `cfg`: config.data)."""
  if cfg.source == "dtmf":
    return lambda split, index: dtmf_utterance(cfg, split, index)
  pools = split_recordings(spoken_digits.load_recordings(cfg.path, cfg.tfds_dir or None), cfg)
  return lambda split, index: connected_utterance(pools, cfg, split, index)
