"""Data files a user's run cannot read, met through the experiments' command lines: one line naming the file, what
is wrong and what to do, before any training and without creating the workdir."""

import json
import os
import subprocess
import sys

import pytest

from rnn_jax.data import parallel, strokes, text
from rnn_jax.data.sources import DataError
from tests.test_run_faults import REPO, _one_line_error, _run_lm


def _run(module, *flags):
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", f"experiments.{module}.main", *flags], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize("body,problem", [
    (None, "empty.txt' does not exist: give a text file, or a folder of *train*.txt, *valid*.txt and *test*.txt"),
    (b"", "empty.txt is empty: give a text corpus"),
    ("café au lait, crème brûlée.\n".encode("latin-1") * 300,
     "bad.txt is not utf-8 text (byte 3: invalid continuation byte): set config.data.encoding to its encoding"),
    (b"ab", "bad.txt holds 2 characters: too few for a valid split of fraction 0.05 (config.data.fractions)"),
])
def test_a_corpus_that_cannot_be_read_is_one_line_naming_the_file(tmp_path, body, problem):
  corpus = tmp_path / ("empty.txt" if not body else "bad.txt")
  if body is not None:
    corpus.write_bytes(body)
  failed = _run_lm(tmp_path / "run", corpus, f"--config.data.tfds_dir={tmp_path / 'tfds'}")
  assert problem in _one_line_error(failed, "DataError")
  assert not (tmp_path / "run").exists()
  if body and body.startswith(b"caf"):  # read with the encoding the message names
    splits = text.load_text_splits(str(corpus), data_dir=str(tmp_path / "tfds"), encoding="latin-1")
    assert splits["train"].startswith("café au lait, crème brûlée.\n")


@pytest.mark.parametrize("source,target,problem", [
    (b"", b"", "corpus.src and {dir}/corpus.tgt are empty: give one sentence per line in each"),
    (b"un\n\xe9t\xe9\n", b"one\nsummer\n", "corpus.src is not UTF-8 text (byte 3: invalid continuation byte)"),
    (b"un\ndeux\n", b"one\n", "corpus.src has 2 lines but {dir}/corpus.tgt has 1: parallel files must be line-aligned"),
])
def test_parallel_files_that_cannot_be_read_are_one_line_naming_them(tmp_path, source, target, problem):
  (tmp_path / "corpus.src").write_bytes(source)
  (tmp_path / "corpus.tgt").write_bytes(target)
  failed = _run("translation", f"--workdir={tmp_path / 'run'}", f"--config.data.source={tmp_path / 'corpus.src'}",
                f"--config.data.target={tmp_path / 'corpus.tgt'}", f"--config.data.tfds_dir={tmp_path / 'tfds'}")
  assert problem.format(dir=tmp_path) in _one_line_error(failed, "DataError")
  assert not (tmp_path / "run").exists()


def test_a_data_path_that_does_not_exist_is_a_data_error_naming_it(tmp_path):
  missing = str(tmp_path / "missing")
  with pytest.raises(DataError, match=f"parallel text file '{missing}' does not exist"):
    parallel.local_pairs(source=missing, target=missing, data_dir=str(tmp_path))
  with pytest.raises(DataError, match=f"Tatoeba archive '{missing}' does not exist"):
    parallel.tatoeba_pairs(missing, data_dir=str(tmp_path))
  with pytest.raises(DataError, match=f"uji data not found at '{missing}'"):
    strokes.load_splits("uji", missing, data_dir=str(tmp_path))


def _uji_json(writers: int, empty_stroke: bool = False) -> str:
  """A UJI-like digits file: two samples per writer and digit, each two strokes of three points."""
  sample = [[[0, 0], [1, 2], [2, 3]], [[3, 0], [3, 1], [4, 4]]]
  raw = {str(d): [sample] * (2 * writers) for d in range(10)}
  if empty_stroke:
    raw["7"] = [sample] * 3 + [[sample[0], []]] + [sample] * (2 * writers - 4)
  return json.dumps({"rawData": raw})


@pytest.mark.parametrize("body,problem", [
    (_uji_json(20)[:5000],
     "digits.json is not valid JSON (Expecting value: line 1 column 5001 (char 5000)): the file may be truncated"),
    (json.dumps({"data": {}}), "digits.json has no 'rawData' object of digit samples"),
    (_uji_json(20, empty_stroke=True), "digits.json: digit 7 sample 3 stroke 1 has shape (0,), not [points, 2]"),
    (_uji_json(10), "digits.json holds samples of 10 writers: too few for 6 valid and 12 test writers"),
])
def test_a_handwriting_file_that_cannot_be_read_is_one_line_naming_it(tmp_path, body, problem):
  (tmp_path / "digits.json").write_text(body)
  failed = _run("handwriting", f"--workdir={tmp_path / 'run'}", "--config.data.source=uji",
                f"--config.data.path={tmp_path / 'digits.json'}", f"--config.data.tfds_dir={tmp_path / 'tfds'}")
  assert problem in _one_line_error(failed, "DataError")
  assert not (tmp_path / "run").exists()


def test_a_uji_file_of_fewer_writers_splits_its_own_last_writers_off(tmp_path):
  (tmp_path / "digits.json").write_text(_uji_json(20))
  splits = strokes.load_splits("uji", path=str(tmp_path / "digits.json"), data_dir=str(tmp_path / "tfds"))
  writers = {split: {s.writer for s in samples} for split, samples in splits.items()}
  assert writers["valid"] == {"uji-02", "uji-03", "uji-04", "uji-05", "uji-06", "uji-07"}
  assert writers["train"] == {"uji-00", "uji-01"} and len(writers["test"]) == 12
  assert [len(splits[s]) for s in ("train", "valid", "test")] == [40, 120, 240]
