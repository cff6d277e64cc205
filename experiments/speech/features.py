"""Log-mel filterbank features with deltas, computed by jit-compiled JAX (`jnp.fft`), and their normaliser.

  feats_BxTxF, frames_B = features(waves_BxN, lengths_B, spec)   # F = num_mels * (1 + delta_order)

A frame is `window_ms` of samples every `hop_ms`, Hamming-windowed, zero-padded to the next power of two;
its power spectrum is weighted by `num_mels` triangular filters on the HTK mel scale (0 Hz to Nyquist) and
logged. Frames past each utterance's length are zero; deltas repeat each utterance's own edge frames.
`utterance_norm` then normalises each utterance over its own frames (cepstral mean and variance normalisation:
it removes a speaker's and a channel's fixed spectral tilt).
"""

from __future__ import annotations

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import ops

LOG_FLOOR = 1e-6      # added to the mel energies before the log
DELTA_WIDTH = 2       # frames on each side in the delta regression


@dataclasses.dataclass(frozen=True)
class Spec:
  sample_rate: int = 8000
  window_ms: float = 25.0
  hop_ms: float = 10.0
  num_mels: int = 40
  delta_order: int = 2     # 0: log-mels only, 1: + deltas, 2: + delta-deltas
  utterance_norm: str = "none"   # "mean": each feature less its mean over the utterance; "mean_var": and / std

  @property
  def window(self) -> int:
    return int(round(self.sample_rate * self.window_ms / 1000))

  @property
  def hop(self) -> int:
    return int(round(self.sample_rate * self.hop_ms / 1000))

  @property
  def fft_size(self) -> int:
    return 1 << (self.window - 1).bit_length()

  @property
  def size(self) -> int:
    return self.num_mels * (1 + self.delta_order)


def spec_from_config(cfg) -> Spec:
  """The `Spec` that `config.features` describes."""
  return Spec(int(cfg.sample_rate), float(cfg.window_ms), float(cfg.hop_ms), int(cfg.num_mels), int(cfg.delta_order),
              str(cfg.utterance_norm))


UTTERANCE_NORMS = ("none", "mean", "mean_var")


def hz_to_mel(hz):
  return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def mel_to_hz(mel):
  return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


def mel_filterbank(spec: Spec) -> np.ndarray:
  """`[fft_size // 2 + 1, num_mels]` triangular filters, equally spaced in mel from 0 Hz to Nyquist."""
  edges_hz = mel_to_hz(np.linspace(0.0, hz_to_mel(spec.sample_rate / 2), spec.num_mels + 2))
  bins_hz = np.arange(spec.fft_size // 2 + 1) * spec.sample_rate / spec.fft_size
  lower, centre, upper = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
  rising = (bins_hz[:, None] - lower) / (centre - lower)
  falling = (upper - bins_hz[:, None]) / (upper - centre)
  return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def num_frames(num_samples, spec: Spec):
  """Whole frames in `num_samples` samples (0 when shorter than one window)."""
  return np.maximum(0, (np.asarray(num_samples) - spec.window) // spec.hop + 1)


def _log_mel(waves_BxN, spec: Spec):
  steps = int(num_frames(waves_BxN.shape[1], spec))
  index_TxW = np.arange(steps)[:, None] * spec.hop + np.arange(spec.window)[None, :]
  window_1x1xW = np.hamming(spec.window).astype(np.float32).reshape(1, 1, -1)
  frames_BxTxW = waves_BxN[:, index_TxW] * window_1x1xW
  power = jnp.abs(jnp.fft.rfft(frames_BxTxW, n=spec.fft_size)) ** 2
  return jnp.log(power @ jnp.asarray(mel_filterbank(spec)) + LOG_FLOOR)


def deltas(x_BxTxF, frames_B):
  """Regression deltas over +-DELTA_WIDTH frames, each utterance's first and last frames repeated at its edges."""
  steps = x_BxTxF.shape[1]
  last = jnp.maximum(frames_B - 1, 0)[:, None]
  t = jnp.arange(steps)[None, :]
  total = jnp.zeros_like(x_BxTxF)
  for k in range(1, DELTA_WIDTH + 1):
    ahead = jnp.take_along_axis(x_BxTxF, jnp.clip(t + k, 0, last)[..., None], axis=1)
    behind = jnp.take_along_axis(x_BxTxF, jnp.clip(t - k, 0, last)[..., None], axis=1)
    total = total + k * (ahead - behind)
  return total / (2 * sum(k * k for k in range(1, DELTA_WIDTH + 1)))


def normalize_utterances(x_BxTxF, frames_B, variance: bool):
  """Each utterance's features less their mean over its valid frames (and divided by their std if `variance`);
  zero past each utterance's frames."""
  valid_BxTx1 = ops.mask_from_lengths(frames_B, x_BxTxF.shape[1])[..., None]
  count_Bx1x1 = jnp.maximum(frames_B, 1).reshape(-1, 1, 1)
  mean_Bx1xF = jnp.sum(jnp.where(valid_BxTx1, x_BxTxF, 0.0), axis=1, keepdims=True) / count_Bx1x1
  centred = jnp.where(valid_BxTx1, x_BxTxF - mean_Bx1xF, 0.0)
  if variance:
    std_Bx1xF = jnp.sqrt(jnp.sum(centred ** 2, axis=1, keepdims=True) / count_Bx1x1)
    centred = centred / jnp.maximum(std_Bx1xF, 1e-5)
  return centred


@functools.partial(jax.jit, static_argnames="spec")
def features(waves_BxN, lengths_B, spec: Spec):
  """`(feats_BxTxF, frames_B)`: log-mels and `delta_order` orders of deltas, normalised per utterance as
  `spec.utterance_norm` says; zero past each utterance's frames."""
  frames_B = jnp.maximum(0, (lengths_B - spec.window) // spec.hop + 1)
  orders = [_log_mel(waves_BxN, spec)]
  for _ in range(spec.delta_order):
    orders.append(deltas(orders[-1], frames_B))
  feats = jnp.concatenate(orders, axis=-1)
  if spec.utterance_norm != "none":
    return normalize_utterances(feats, frames_B, spec.utterance_norm == "mean_var"), frames_B
  valid_BxTx1 = ops.mask_from_lengths(frames_B, feats.shape[1])[..., None]
  return jnp.where(valid_BxTx1, feats, 0.0), frames_B


@dataclasses.dataclass(frozen=True)
class Normalizer:
  """Per-feature mean and std (of the training split's valid frames)."""
  mean: np.ndarray
  std: np.ndarray

  @classmethod
  def fit(cls, feats_BxTxF: np.ndarray, frames_B: np.ndarray) -> "Normalizer":
    valid = np.concatenate([f[:n] for f, n in zip(np.asarray(feats_BxTxF), np.asarray(frames_B))])
    return cls(valid.mean(0).astype(np.float32), np.maximum(valid.std(0), 1e-5).astype(np.float32))

  def apply(self, feats_BxTxF, frames_B):
    valid_BxTx1 = ops.mask_from_lengths(frames_B, feats_BxTxF.shape[1])[..., None]
    normed = (feats_BxTxF - self.mean.reshape(1, 1, -1)) / self.std.reshape(1, 1, -1)
    return jnp.where(valid_BxTx1, normed, 0.0)

  def to_json(self) -> str:
    """What `load` reads (the train loop writes it into the workdir once the run is accepted)."""
    return json.dumps({"mean": self.mean.tolist(), "std": self.std.tolist()})

  @classmethod
  def load(cls, path: str) -> "Normalizer":
    with open(path) as f:
      stats = json.load(f)
    return cls(np.asarray(stats["mean"], np.float32), np.asarray(stats["std"], np.float32))
