"""A user's ink files: each format read from a small fixture against hand-computed arrays, and broken files."""

import json
import os

import numpy as np
import pytest

from rnn_jax.data import ink, strokes
from rnn_jax.data.sources import DataError
from tests.conftest import fetched_file

# A file as a math-recognition pen toolkit writes it (CROHME style): the traces sit under <ink>, the
# traceGroups only point at them (symbol segmentation), so the whole file is one sample with the ink's label.
_SEGMENTED_INKML = """<?xml version="1.0" encoding="UTF-8"?>
<ink xmlns="http://www.w3.org/2003/InkML">
<traceFormat>
<channel name="X" type="decimal"/>
<channel name="Y" type="decimal"/>
</traceFormat>
<annotation type="truth">$a+1$</annotation>
<annotation type="writer">w042</annotation>
<trace id="0">
10.5 20, 11 22, 11 22, 12 24
</trace>
<trace id="1">
30 20, 30 28
</trace>
<traceGroup xml:id="2">
<annotation type="truth">Segmentation</annotation>
<traceGroup xml:id="3">
<annotation type="truth">a</annotation>
<traceView traceDataRef="0"/>
</traceGroup>
<traceGroup xml:id="4">
<annotation type="truth">1</annotation>
<traceView traceDataRef="1"/>
</traceGroup>
</traceGroup>
</ink>
"""

# A tablet export: channels declared in a context, a time channel, difference-encoded points (' first and
# " second differences), a hover trace (pen up), one traceGroup per written word.
_GROUPED_INKML = """<?xml version="1.0" encoding="UTF-8"?>
<ink xmlns="http://www.w3.org/2003/InkML">
 <definitions>
  <context xml:id="ctx0">
   <inkSource xml:id="tablet">
    <traceFormat>
     <channel name="X" type="integer"/>
     <channel name="Y" type="integer"/>
     <channel name="T" type="integer" units="ms"/>
    </traceFormat>
   </inkSource>
  </context>
 </definitions>
 <traceGroup contextRef="#ctx0">
  <annotation type="truth">hi</annotation>
  <trace>100 200 0, '+3 '-4 '10, "1 "0 "0</trace>
  <trace type="penUp">107 192 20, 120 200 40</trace>
  <trace>120 200 40, 120 210 50</trace>
 </traceGroup>
 <traceGroup contextRef="#ctx0">
  <annotation type="truth">yo</annotation>
  <trace>0 0 90,5 5 95</trace>
 </traceGroup>
</ink>
"""


def _absolute(sample):
  """The sample's strokes as absolute points relative to its first point, y up."""
  return [s.tolist() for s in strokes.to_strokes(sample.points)]


def _relative(pieces, y_up=False):
  """Expected strokes: relative to the first point, y flipped when the file's y grows downward."""
  origin = np.asarray(pieces[0][0], np.float64)
  sign = np.array([1.0, 1.0 if y_up else -1.0])
  return [((np.asarray(p, np.float64) - origin) * sign).tolist() for p in pieces]


def test_inkml_file_without_groups_of_traces_is_one_sample(tmp_path):
  path = tmp_path / "expression.inkml"
  path.write_text(_SEGMENTED_INKML)
  [sample] = ink.read(str(path))
  assert (sample.text, sample.writer) == ("$a+1$", "w042")
  # The repeated point is dropped; y grows downward in the file and upward in the sample.
  assert _absolute(sample) == _relative([[[10.5, 20], [11, 22], [12, 24]], [[30, 20], [30, 28]]])
  np.testing.assert_array_equal(sample.points[:, 2], [0, 0, 1, 0, 1])


def test_inkml_groups_are_samples_and_difference_encoding_is_decoded(tmp_path):
  path = tmp_path / "words.inkml"
  path.write_text(_GROUPED_INKML)
  hi, yo = ink.read(str(path))
  assert [hi.text, yo.text] == ["hi", "yo"] and hi.writer == "words"
  # (100, 200); + velocity (3, -4) -> (103, 196); velocity + (1, 0) = (4, -4) -> (107, 192).
  assert _absolute(hi) == _relative([[[100, 200], [103, 196], [107, 192]], [[120, 200], [120, 210]]])
  assert _absolute(yo) == _relative([[[0, 0], [5, 5]]])
  np.testing.assert_array_equal(ink.parse_trace("100 200 0, '3 '-4 '10, \"1 \"0 \"0")[:, 2], [0, 10, 20])


def test_uji_style_json_takes_the_writer_from_a_field_or_the_file(tmp_path):
  raw = {"7": [[[[0, 0], [1, 2]], [[3, 3], [3, 4]]], {"writer": "bob", "strokes": [[[5, 5], [6, 7]]]}],
         "1": [[[[2, 0], [2, 9]]]]}
  path = tmp_path / "mine.json"
  path.write_text(json.dumps({"writer": "alice", "rawData": raw}))
  samples = ink.read(str(path))
  assert [(s.text, s.writer) for s in samples] == [("7", "alice"), ("7", "bob"), ("1", "alice")]
  assert _absolute(samples[0]) == _relative([[[0, 0], [1, 2]], [[3, 3], [3, 4]]])
  assert _absolute(samples[2]) == _relative([[[2, 0], [2, 9]]])
  path.write_text(json.dumps({"rawData": raw}))
  assert [s.writer for s in ink.read(str(path))] == ["mine", "bob", "mine"]   # no field: one writer, the file's


def test_strokes_json_reads_y_up_on_request_and_round_trips(tmp_path):
  path = tmp_path / "pad.json"
  path.write_text(json.dumps([{"text": "no", "strokes": [[[0, 0], [0, 10], [5, 0]], [[8, 0], [8, 3]]]}]))
  [down] = ink.read(str(path))
  [up] = ink.read(str(path), y_up=True)
  assert down.text == "no" and down.writer == "pad"
  assert _absolute(up) == _relative([[[0, 0], [0, 10], [5, 0]], [[8, 0], [8, 3]]], y_up=True)
  assert _absolute(down) == _relative([[[0, 0], [0, 10], [5, 0]], [[8, 0], [8, 3]]])
  copy = tmp_path / "copy.json"
  ink.write_strokes_json(str(copy), [down, up])
  again = ink.read(str(copy))
  assert [s.text for s in again] == ["no", "no"]
  np.testing.assert_allclose(again[0].points, down.points, atol=1e-3)
  np.testing.assert_allclose(again[1].points, up.points, atol=1e-3)


@pytest.mark.parametrize("name,content,message", [
    ("notes.txt", "1 2, 3 4", r"notes.txt: unknown ink format '.txt'"),
    ("cut.json", '[{"text": "a", "strokes": [[[0, 0], [1', r"cut.json is not valid JSON"),
    ("list.json", '[{"text": "a"}]', r"list.json: expected a strokes JSON list"),
    ("flat.json", '[{"text": "a", "strokes": [[0, 1, 2]]}]', r"flat.json: sample 0, stroke 0: expected a list of"),
    ("page.xml", "<page><trace>1 2</trace></page>", r"page.xml: the root element is <page>, not InkML's <ink>"),
    ("broken.inkml", "<ink><trace>1 2, 3", r"broken.inkml is not well-formed XML"),
    ("ragged.inkml", "<ink><trace>1 2, 3 4 5</trace></ink>", r"ragged.inkml: sample 0: point '3 4 5' has 3 values"),
    ("empty.json", "[]", r"empty.json holds no ink samples"),
    ("nan.json", '[{"text": "a", "strokes": [[[0, 0], [NaN, 1]]]}]', r"nan.json: sample 0, stroke 0: a coordinate is NaN"),
    ("dot.json", '[{"text": "a", "strokes": [[[3, 4], [3, 4]]]}]', r"dot.json: sample 0 is a single point"),
    ("hollow.inkml", "<ink><traceGroup><trace></trace></traceGroup></ink>", r"hollow.inkml: sample 0, stroke 0: expected a list of \[x, y\] points"),
])
def test_broken_files_fail_with_one_line_naming_the_file(tmp_path, name, content, message):
  (tmp_path / name).write_text(content)
  with pytest.raises(DataError, match=message) as error:
    ink.read(str(tmp_path / name))
  assert "\n" not in str(error.value)


def test_bad_samples_are_left_out_and_named_when_a_skipped_list_is_given(tmp_path):
  path = tmp_path / "mixed.json"
  path.write_text('[{"text": "ok", "strokes": [[[0, 0], [1, 2]]]}, {"text": "dot", "strokes": [[[5, 5]]]},'
                  ' {"text": "nan", "strokes": [[[0, 0], [Infinity, 1]]]}, {"text": "ok2", "strokes": [[[0, 0], [2, 1]]]}]')
  with pytest.raises(DataError, match="sample 1 is a single point"):
    ink.read(str(path))
  skipped = []
  assert [s.text for s in ink.read(str(path), skipped=skipped)] == ["ok", "ok2"]
  assert len(skipped) == 2 and "sample 1 is a single point" in skipped[0] and "sample 2, stroke 0" in skipped[1]
  only_bad = tmp_path / "bad.json"
  only_bad.write_text('[{"text": "dot", "strokes": [[[5, 5]]]}]')
  with pytest.raises(DataError, match=r"bad.json holds no ink samples that can be read \(1 bad\)"):
    ink.read(str(only_bad), skipped=[])


def test_the_uji_file_reads_as_the_uji_builder_reads_it(tmp_path):
  """The UJI Pen Characters v2 digits JSON through the UJI-style reader: the same 1200 samples (points and
  labels) as the dataset's own builder, which flips y and drops repeated points the same way."""
  path = fetched_file("uji_pen_digits")
  mine = ink.read(path)
  built = [s for split in strokes.load_splits("uji", path=path, data_dir=str(tmp_path)).values() for s in split]
  assert len(mine) == len(built) == 1200
  assert {s.writer for s in mine} == {os.path.splitext(os.path.basename(path))[0]}   # one writer: no field says more
  key = lambda s: (s.text, s.points.tobytes())
  assert sorted(map(key, mine)) == sorted(map(key, built))
