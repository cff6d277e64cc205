"""A user's own ink files -> `strokes.Sample`s (offsets, y up, as every stroke dataset here): one reader per format.

  samples = read("note.inkml")                 # format from the extension, then the content
  samples = read("pad.json", y_up=True)        # coordinates whose y grows upward (a plot, some pen tablets)

Formats (all three take y growing downward, as on a screen and in the files the tools here write, unless
`y_up`):
  InkML (.inkml, .xml)  W3C InkML: `<trace>`s of points "x y [t ...], x y ..." (channel order from
      `<traceFormat>`, first and second difference encodings `'` and `"`; hover traces, `type="penUp"`, are
      skipped); the traces inside one `<traceGroup>` form a sample, labelled by its `<annotation type="truth">`;
      a file without such groups is one sample labelled by the `<ink>`'s truth annotation. Writer: `<annotation type="writer">`, else the file name.
  UJI-style JSON        `{"rawData": {label: [sample, ...]}}`, a sample a list of strokes of [x, y] (or
      `{"strokes": [...], "writer": ...}`); the writer from that field, else the file's top-level "writer",
      else the file name. Samples come label by label, in file order.
  strokes JSON          `[{"text": ..., "strokes": [[[x, y], ...], ...], "writer": ...}, ...]`, what
      `--mode=write` of the handwriting experiment emits (`write_strokes_json`).
Unknown or broken files raise a DataError naming the file and what is wrong; so does a bad sample (a stroke that
is not a list of points, a NaN or infinite coordinate, a single point), unless a `skipped` list is given to
`read`, which then collects each bad sample's error line and leaves the sample out.
"""

from __future__ import annotations

import functools
import json
import os
import re
import xml.etree.ElementTree as ET
from typing import Sequence

import numpy as np

from rnn_jax.data import strokes
from rnn_jax.data.sources import DataError

INKML_EXTENSIONS = (".inkml", ".xml")


def read(path: str, y_up: bool = False, skipped: list | None = None) -> list[strokes.Sample]:
  """The samples of an ink file, in file order; the format from the extension (.inkml/.xml, .json) and content.

  With `skipped` (a list), a bad sample is left out and its error line appended there instead of raised."""
  if not os.path.isfile(path):
    raise DataError(f"{path}: no such ink file")
  extension = os.path.splitext(path)[1].lower()
  if extension in INKML_EXTENSIONS:
    samples = read_inkml(path, y_up, skipped)
  elif extension == ".json":
    content = _json(path)
    samples = (read_uji_json(path, y_up, content, skipped) if isinstance(content, dict) and "rawData" in content
               else read_strokes_json(path, y_up, content, skipped))
  else:
    raise DataError(f"{path}: unknown ink format {extension!r}; expected InkML (.inkml, .xml), UJI-style JSON "
                    "({\"rawData\": ...}) or strokes JSON ([{\"text\": ..., \"strokes\": ...}]) (.json)")
  if not samples:
    raise DataError(f"{path} holds no ink samples" + (f" that can be read ({len(skipped)} bad)" if skipped else ""))
  return samples


def _kept(make_samples, skipped: list | None) -> list[strokes.Sample]:
  """The samples the thunks in `make_samples` build; a bad one's DataError is raised, or with `skipped` (a list)
  appended there and the sample left out."""
  samples = []
  for make in make_samples:
    try:
      samples.append(make())
    except DataError as e:
      if skipped is None:
        raise
      skipped.append(str(e))
  return samples


def _sample(raw_strokes: Sequence, y_up: bool, text: str, writer: str, where: str) -> strokes.Sample:
  """Absolute strokes (lists of [x, y, ...]) -> a Sample with y pointing up and repeated points dropped."""
  flip = np.array([1.0, 1.0 if y_up else -1.0])
  pieces = []
  for k, stroke in enumerate(raw_strokes):
    try:
      xy = np.asarray(stroke, np.float64)
    except (TypeError, ValueError):
      xy = np.zeros((0,))
    if xy.ndim != 2 or xy.shape[0] == 0 or xy.shape[1] < 2:
      raise DataError(f"{where}, stroke {k}: expected a list of [x, y] points, got {str(stroke)[:60]}")
    if not np.isfinite(xy[:, :2]).all():
      raise DataError(f"{where}, stroke {k}: a coordinate is NaN or infinite")
    xy = xy[:, :2] * flip
    keep = np.concatenate([[True], np.any(np.diff(xy, axis=0) != 0, axis=1)])
    pieces.append(xy[keep])
  if not pieces:
    raise DataError(f"{where} has no strokes")
  if sum(len(p) for p in pieces) < 2:
    raise DataError(f"{where} is a single point: a sample needs a pen movement")
  return strokes.Sample(strokes.from_strokes(pieces), text, writer)


def _file_writer(path: str) -> str:
  return os.path.splitext(os.path.basename(path))[0]


# ------------------------------------------------------------------ JSON formats


def _json(path: str):
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise DataError(f"{path} is not valid JSON ({e}); is it cut short?") from None


def read_uji_json(path: str, y_up: bool = False, content=None, skipped: list | None = None) -> list[strokes.Sample]:
  """`{"rawData": {label: [sample, ...]}, "writer": optional}`; see the module docstring."""
  content = _json(path) if content is None else content
  raw = content.get("rawData") if isinstance(content, dict) else None
  if not isinstance(raw, dict):
    raise DataError(f"{path} has no 'rawData' object: expected {{\"rawData\": {{label: [sample, ...]}}}}")
  file_writer = str(content.get("writer", _file_writer(path)))
  makes = []
  for label, items in raw.items():
    if not isinstance(items, list):
      raise DataError(f"{path}: rawData[{label!r}] is not a list of samples")
    for i, item in enumerate(items):
      where = f"{path}: rawData[{label!r}][{i}]"
      if isinstance(item, dict):
        raw_strokes, writer = item.get("strokes", []), str(item.get("writer", file_writer))
      else:
        raw_strokes, writer = item, file_writer
      makes.append(lambda r=raw_strokes, t=label, w=writer, at=where: _sample(r, y_up, t, w, at))
  samples = _kept(makes, skipped)
  return samples


def read_strokes_json(path: str, y_up: bool = False, content=None, skipped: list | None = None
                      ) -> list[strokes.Sample]:
  """`[{"text": ..., "strokes": [[[x, y], ...], ...], "writer": optional}, ...]`."""
  content = _json(path) if content is None else content
  if not isinstance(content, list) or not all(isinstance(item, dict) and "strokes" in item for item in content):
    raise DataError(f"{path}: expected a strokes JSON list [{{\"text\": ..., \"strokes\": [[[x, y], ...]]}}] or a "
                    "UJI-style {\"rawData\": ...} object")
  return _kept([lambda item=item, i=i: _sample(item["strokes"], y_up, str(item.get("text", "")),
                                                str(item.get("writer", _file_writer(path))), f"{path}: sample {i}")
                for i, item in enumerate(content)], skipped)


def write_strokes_json(path: str, samples: Sequence[strokes.Sample]) -> None:
  """Writes samples as strokes JSON, y growing downward (absolute coordinates, 3 decimals); `read` reads it back."""
  items = [{"text": s.text, "writer": s.writer,
            "strokes": [np.round(stroke * [1.0, -1.0], 3).tolist() for stroke in strokes.to_strokes(s.points)]}
           for s in samples]
  with open(path, "w", encoding="utf-8") as f:
    json.dump(items, f)


# ------------------------------------------------------------------ InkML


def _tag(element) -> str:
  return element.tag.rsplit("}", 1)[-1]


def _children(element, tag: str) -> list:
  return [child for child in element if _tag(child) == tag]


def _truth(element) -> str:
  for note in _children(element, "annotation"):
    if note.get("type") == "truth":
      return (note.text or "").strip()
  return ""


def _channels(root) -> tuple[int, int]:
  """Positions of the X and Y channels in each point (from the first `<traceFormat>`; default 0, 1)."""
  for trace_format in root.iter():
    if _tag(trace_format) == "traceFormat":
      names = [c.get("name", "").upper() for c in trace_format.iter() if _tag(c) == "channel"]
      if "X" in names and "Y" in names:
        return names.index("X"), names.index("Y")
  return 0, 1


_VALUE = re.compile(r"([!'\"]?)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")


def parse_trace(text: str) -> np.ndarray:
  """An InkML trace's points `[n, channels]`: comma-separated points, values explicit, `'` first difference or
  `"` second difference (a prefix holds for the channel until another one changes it)."""
  rows, modes, values, velocities = [], [], [], []
  for point in (p for p in text.split(",") if p.strip()):
    tokens = _VALUE.findall(point)
    if not modes:
      modes, values, velocities = ["!"] * len(tokens), [0.0] * len(tokens), [0.0] * len(tokens)
    if len(tokens) != len(modes):
      raise ValueError(f"point {point.strip()!r} has {len(tokens)} values, the first point {len(modes)}")
    for c, (prefix, number) in enumerate(tokens):
      modes[c] = prefix or modes[c]
      x = float(number)
      if modes[c] == "!":
        velocities[c], values[c] = x - values[c], x
      else:
        velocities[c] = x if modes[c] == "'" else velocities[c] + x
        values[c] += velocities[c]
    rows.append(list(values))
  return np.asarray(rows, np.float64)


def read_inkml(path: str, y_up: bool = False, skipped: list | None = None) -> list[strokes.Sample]:
  """The samples of an InkML file; see the module docstring."""
  try:
    root = ET.parse(path).getroot()
  except ET.ParseError as e:
    raise DataError(f"{path} is not well-formed XML ({e})") from None
  if _tag(root) != "ink":
    raise DataError(f"{path}: the root element is <{_tag(root)}>, not InkML's <ink>")
  writer = next((n.text.strip() for n in root.iter() if _tag(n) == "annotation" and n.get("type") == "writer"
                 and n.text), _file_writer(path))
  x, y = _channels(root)
  groups = [g for g in root.iter() if _tag(g) == "traceGroup" and _children(g, "trace")]
  units = [(g, _truth(g)) for g in groups] or [(root, _truth(root))]

  def make(i, unit, text):
    traces = [t for t in unit.iter() if _tag(t) == "trace" and t.get("type") != "penUp"]   # penUp: hovering
    try:
      points = [parse_trace(t.text or "") for t in traces]
    except ValueError as e:
      raise DataError(f"{path}: sample {i}: {e}") from None
    return _sample([p[:, [x, y]] if len(p) else p for p in points], y_up, text, writer, f"{path}: sample {i}")

  return _kept([functools.partial(make, i, unit, text) for i, (unit, text) in enumerate(units)], skipped)
