"""Synthetic online handwriting from Hershey script fonts (the embedded default; no download).

The Hershey fonts (package `Hershey-Fonts`) store every glyph as single-line pen
paths, so a word laid out glyph by glyph is already a pen trajectory; in the script
fonts one letter's exit stroke ends where the next one's entry begins, and the pen
stays down across such joins. Each sample gets its own writer-like variation:

  slant (shear), scale and aspect, letter spacing (per word and per gap), baseline
  drift (slope + slow wave), smooth trajectory noise, and resampling along the path
  at a random pen speed.

  rng = np.random.default_rng(seed)
  text = random_text(rng, LOWERCASE, 3, 7)
  sample = synthesize(text, rng)        # Synthesized(points_Nx3 offsets, char_index_N)

Points are `(dx, dy, pen_up)` offsets in font units (the x-height is about 9), y up,
`pen_up = 1` on the last point of each stroke. The same seed gives the same sample.
"""

from __future__ import annotations

import dataclasses
import functools
import string
from typing import NamedTuple, Sequence

import numpy as np
from HersheyFonts import HersheyFonts

FONTS = ("scripts", "cursive")
LOWERCASE = string.ascii_lowercase


class Glyph(NamedTuple):
  strokes: tuple   # of [N, 2] float arrays in glyph coordinates, y up
  left: float      # x of the glyph's left edge
  width: float     # advance


@functools.lru_cache(maxsize=None)
def glyphs(font: str) -> dict[str, Glyph]:
  """The printable ASCII glyphs of a Hershey font (y flipped so that up is positive)."""
  hershey = HersheyFonts()
  hershey.load_default_font(font)
  table = {}
  for char in string.printable[:95]:
    glyph = next(iter(hershey.glyphs_for_text(char)), None)
    if glyph is None:
      continue
    paths = tuple(np.asarray(s, np.float64) * np.array([1.0, -1.0]) for s in glyph.strokes if len(s) > 0)
    table[char] = Glyph(paths, float(glyph.left_offset), float(glyph.char_width))
  return table


@dataclasses.dataclass(frozen=True)
class Style:
  """Ranges of the per-sample variation (uniform draws unless noted); lengths in font units."""
  slant: tuple = (-0.45, 0.35)        # shear x += slant * y
  scale: tuple = (0.8, 1.25)
  aspect: tuple = (0.85, 1.15)        # extra horizontal stretch
  spacing: tuple = (-1.0, 3.0)        # extra space added after every letter (per sample)
  spacing_jitter: float = 0.8         # std of a per-gap change of that space
  baseline_slope: float = 0.04        # |slope| of the baseline
  baseline_wave: float = 1.2          # amplitude of a slow sine on the baseline
  noise: float = 0.3                  # std of the smooth trajectory noise
  noise_smoothness: float = 3.0       # std (in points) of the Gaussian that smooths it
  step: tuple = (2.5, 3.5)            # distance between resampled points (pen speed)


class Synthesized(NamedTuple):
  points: np.ndarray      # [N, 3] float32 (dx, dy, pen_up)
  char_index: np.ndarray  # [N] int32: index into the text of the character each point belongs to


def random_text(rng: np.random.Generator, charset: str, min_length: int, max_length: int,
                num_words: int = 1) -> str:
  """`num_words` random strings of `min_length..max_length` characters, joined by spaces."""
  words = []
  for _ in range(num_words):
    length = rng.integers(min_length, max_length + 1)
    words.append("".join(rng.choice(list(charset), size=length)))
  return " ".join(words)


def _layout(text: str, table: dict[str, Glyph], rng, style: Style):
  """Pen paths of the laid-out text: a list of ([N, 2] points, [N] char index), joins merged.

  Joins are found on the nominal layout (no extra spacing): a glyph whose first stroke
  starts where the previous glyph's last stroke ended continues that stroke.
  """
  mean_space = rng.uniform(*style.spacing)
  paths, cursor, nominal, previous_end = [], 0.0, 0.0, None
  for index, char in enumerate(text):
    if char not in table:
      raise ValueError(f"character {char!r} has no glyph in the font")
    glyph = table[char]
    for k, path in enumerate(glyph.strokes):
      placed = path + np.array([cursor - glyph.left, 0.0])
      chars = np.full(len(path), index)
      joined = k == 0 and previous_end is not None and np.abs(
          path[0] + np.array([nominal - glyph.left, 0.0]) - previous_end).max() < 0.5
      if joined:
        last_points, last_chars = paths[-1]
        paths[-1] = (np.concatenate([last_points, placed]), np.concatenate([last_chars, chars]))
      else:
        paths.append((placed, chars))
    previous_end = glyph.strokes[-1][-1] + np.array([nominal - glyph.left, 0.0]) if glyph.strokes else None
    nominal += glyph.width
    cursor += glyph.width + (mean_space + style.spacing_jitter * rng.normal() if char != " " else 0.0)
  return paths


def resample_polyline(points_Nx2: np.ndarray, step: float):
  """`(xy_Mx2, source_M)`: points evenly spaced by about `step` along the polyline (ends kept), and for
  each the index of the input point that starts its segment."""
  source_N = np.flatnonzero(np.concatenate([[True], np.linalg.norm(np.diff(points_Nx2, axis=0), axis=1) > 1e-9]))
  points_Nx2 = points_Nx2[source_N]
  seg = np.linalg.norm(np.diff(points_Nx2, axis=0), axis=1)
  arc = np.concatenate([[0.0], np.cumsum(seg)])
  count = max(int(round(arc[-1] / step)), 1)
  at = np.linspace(0.0, arc[-1], count + 1)
  xy = np.stack([np.interp(at, arc, points_Nx2[:, 0]), np.interp(at, arc, points_Nx2[:, 1])], axis=1)
  return xy, source_N[np.clip(np.searchsorted(arc, at, side="right") - 1, 0, len(source_N) - 1)]


def _smooth_noise(rng, count, std, smoothness):
  if std <= 0 or count == 0:
    return np.zeros((count, 2))
  radius = int(3 * smoothness) + 1
  kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / smoothness) ** 2)
  kernel /= np.sqrt(np.sum(kernel ** 2))   # unit variance after smoothing
  white = rng.normal(size=(count + 2 * radius, 2))
  return std * np.stack([np.convolve(white[:, i], kernel, mode="valid") for i in range(2)], axis=1)


def synthesize(text: str, rng: np.random.Generator, fonts: Sequence[str] = FONTS, style: Style = Style()
               ) -> Synthesized:
  """One handwritten-looking rendering of `text` (see the module doc)."""
  if not text.strip():
    raise ValueError("text must contain at least one visible character")
  table = glyphs(fonts[rng.integers(len(fonts))])
  paths = _layout(text, table, rng, style)
  step = rng.uniform(*style.step)
  resampled = []
  for points_Nx2, chars_N in paths:
    xy_Mx2, source_M = resample_polyline(points_Nx2, step)
    resampled.append((xy_Mx2, chars_N[source_M]))
  xy = np.concatenate([p for p, _ in resampled])
  chars = np.concatenate([c for _, c in resampled]).astype(np.int32)
  ends = np.cumsum([len(p) for p, _ in resampled]) - 1
  xy = xy + _smooth_noise(rng, len(xy), style.noise, style.noise_smoothness)
  slant, scale = rng.uniform(*style.slant), rng.uniform(*style.scale)
  aspect = rng.uniform(*style.aspect)
  x = (xy[:, 0] + slant * xy[:, 1]) * aspect
  slope = rng.uniform(-style.baseline_slope, style.baseline_slope)
  wavelength, phase = rng.uniform(60.0, 160.0), rng.uniform(0, 2 * np.pi)
  y = xy[:, 1] + slope * x + style.baseline_wave * rng.uniform() * np.sin(2 * np.pi * x / wavelength + phase)
  absolute = scale * np.stack([x, y], axis=1)
  points = np.zeros((len(absolute), 3), np.float32)
  points[1:, :2] = np.diff(absolute, axis=0)
  points[ends, 2] = 1.0
  return Synthesized(points, chars)
