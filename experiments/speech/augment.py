"""Training-time augmentation: speed, volume and noise on the waves; SpecAugment-style masks on the features.

  wave = perturb_wave(wave, rng, config.augment)                  # numpy, per training utterance
  feats_BxTxF = mask_features(key, feats_BxTxF, frames_B, num_mels, config.augment)   # jax, inside the loss

Speed perturbation resamples the wave (polyphase, anti-aliased) so it plays `speed` times faster: durations
shrink and every frequency rises by `speed` (a shorter or longer vocal tract, a faster or slower talker).
Masks (Park et al. 2019) set bands of mel channels (the same bands in every delta order) and spans of frames
to zero, the normalised features' mean.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import signal

SPEED_RESOLUTION = 100   # speeds are rounded to 1/SPEED_RESOLUTION (the polyphase up/down factors)


def is_on(cfg) -> bool:
  """Whether `cfg` (config.augment) changes the waves at all."""
  return tuple(cfg.speed) != (1.0, 1.0) or tuple(cfg.gain_db) != (0.0, 0.0) or cfg.noise


def resample_speed(wave_N: np.ndarray, speed: float) -> np.ndarray:
  """`wave_N` played `speed` times faster: about N / speed samples, frequencies times `speed`."""
  down = int(round(speed * SPEED_RESOLUTION))
  if down == SPEED_RESOLUTION:
    return wave_N
  return signal.resample_poly(wave_N, SPEED_RESOLUTION, down).astype(np.float32)


def perturb_wave(wave_N: np.ndarray, rng: np.random.Generator, cfg) -> np.ndarray:
  """A random speed in `cfg.speed`, gain in `cfg.gain_db`, and white noise `cfg.noise_db` below its RMS."""
  wave = resample_speed(wave_N, rng.uniform(*cfg.speed)) * 10 ** (rng.uniform(*cfg.gain_db) / 20)
  if cfg.noise:
    rms = np.sqrt(np.mean(wave ** 2))
    wave = wave + rms / 10 ** (rng.uniform(*cfg.noise_db) / 20) * rng.standard_normal(len(wave))
  return wave.astype(np.float32)


def _spans(key, count: int, max_width: int, extent_B, size: int):
  """`[B, size]` True inside `count` spans per row, each of width 0..max_width starting inside `extent_B`."""
  k_width, k_start = jax.random.split(key)
  batch = extent_B.shape[0]
  width = jax.random.randint(k_width, (batch, count), 0, max_width + 1)
  room = jnp.maximum(extent_B[:, None] - width + 1, 1)
  start = jnp.floor(jax.random.uniform(k_start, (batch, count)) * room).astype(jnp.int32)
  position = jnp.arange(size)[None, None, :]
  inside = (position >= start[..., None]) & (position < (start + width)[..., None])
  return jnp.any(inside, axis=1)


def mask_features(key, feats_BxTxF, frames_B, num_mels: int, cfg):
  """SpecAugment: `cfg.freq_masks` bands of up to `cfg.freq_mask_width` mel channels (in each delta order)
  and `cfg.time_masks` spans of up to `cfg.time_mask_width` frames (inside each utterance) set to 0."""
  batch, steps, size = feats_BxTxF.shape
  k_freq, k_time = jax.random.split(key)
  masked_BxTxF = jnp.zeros(feats_BxTxF.shape, bool)
  if cfg.freq_masks:
    bands_BxM = _spans(k_freq, cfg.freq_masks, cfg.freq_mask_width, jnp.full((batch,), num_mels), num_mels)
    masked_BxTxF |= jnp.tile(bands_BxM, (1, size // num_mels))[:, None, :]
  if cfg.time_masks:
    masked_BxTxF |= _spans(k_time, cfg.time_masks, cfg.time_mask_width, frames_B, steps)[:, :, None]
  return jnp.where(masked_BxTxF, 0.0, feats_BxTxF)
