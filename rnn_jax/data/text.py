"""Text corpora through tensorflow-datasets (no TensorFlow), vocabularies, and stream batching.

Every corpus reaches the model the same way: a TFDS builder written as array_record
and read with `as_data_source()` (`tfds.load`/`as_dataset` would need TensorFlow).

  splits = load_text_splits("stdlib")                      # embedded default, no download
  splits = load_text_splits("/path/input.txt")             # one file, split 90/5/5 in order
  splits = load_text_splits("/path/dir")                   # dir with train.txt, valid.txt, test.txt
  splits = load_text_splits("fetched:tiny_shakespeare")    # python -m rnn_jax.data.fetch tiny_shakespeare
  splits = load_text_splits("tfds:tiny_shakespeare")       # a TFDS catalog dataset (needs internet once)
"""

from __future__ import annotations

import ast
import dataclasses
import glob
import json
import os
import sysconfig
from collections import Counter
from typing import Sequence

import numpy as np
import tensorflow_datasets as tfds

from rnn_jax.data import fetch, sources
from rnn_jax.data.sources import DEFAULT_DATA_DIR, SPLITS, DataError

_CHUNK_CHARS = 1 << 16


def stdlib_docstring_text() -> str:
  """The docstrings of the Python standard library's top-level modules, in a fixed order.

  About 0.9 MB of real English technical prose on every machine with Python (the
  exact text depends on the Python version).
  """
  docs = []
  for path in sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py"))):
    try:
      with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    except (SyntaxError, UnicodeDecodeError, ValueError):
      continue
    for node in ast.walk(tree):
      if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        doc = ast.get_docstring(node)
        if doc:
          docs.append(doc)
  return "\n\n".join(docs) + "\n"


def split_by_fraction(text: str, fractions: Sequence[float]) -> dict[str, str]:
  """Splits one text in order into train/valid/test by character fractions."""
  if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
    raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
  a = int(len(text) * fractions[0])
  b = a + int(len(text) * fractions[1])
  return {"train": text[:a], "valid": text[a:b], "test": text[b:]}


def _read(path: str, encoding: str) -> str:
  """The text of `path`; DataError naming the file if it is empty or not in `encoding`."""
  try:
    with open(path, encoding=encoding) as f:
      body = f.read()
  except UnicodeDecodeError as e:
    raise DataError(f"{path} is not {encoding} text (byte {e.start}: {e.reason}): set config.data.encoding to "
                    "its encoding (e.g. latin-1)") from None
  if not body:
    raise DataError(f"{path} is empty: give a text corpus")
  return body


def _local_splits(path: str, fractions, encoding: str = "utf-8") -> dict[str, str]:
  if os.path.isdir(path):
    found = {}
    for split in SPLITS:
      matches = sorted(glob.glob(os.path.join(path, f"*{split}*.txt")))
      if len(matches) != 1:
        raise ValueError(f"expected exactly one file matching *{split}*.txt in {path}, found {matches}")
      found[split] = _read(matches[0], encoding)
    return found
  if os.path.isfile(path):
    body = _read(path, encoding)
    splits = split_by_fraction(body, fractions)
    empty = [name for name, part in splits.items() if not part]
    if empty:
      raise DataError(f"{path} holds {len(body)} characters: too few for a {empty[0]} split of fraction "
                      f"{fractions[SPLITS.index(empty[0])]} (config.data.fractions); give a longer corpus")
    return splits
  raise DataError(f"text corpus {path!r} is neither a file nor a directory")


@dataclasses.dataclass
class LocalTextConfig(tfds.core.BuilderConfig):
  """`path` to a text file or a train/valid/test directory; `fractions` to split a single file; the files'
  `encoding`."""
  path: str = ""
  fractions: tuple = (0.9, 0.05, 0.05)
  encoding: str = "utf-8"


class LocalText(tfds.core.GeneratorBasedBuilder):
  """A local text corpus as ordered chunks of text; splits train/valid/test."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, description=f"Local text corpus {self.builder_config.path}",
        features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
        disable_shuffling=True)  # keep the text in order

  def _split_generators(self, dl_manager):
    del dl_manager
    splits = _local_splits(self.builder_config.path, self.builder_config.fractions, self.builder_config.encoding)
    return {name: self._generate_examples(text) for name, text in splits.items()}

  def _generate_examples(self, text):
    for i in range(0, len(text), _CHUNK_CHARS):
      yield i, {"text": text[i:i + _CHUNK_CHARS]}


def _config_for(path: str, fractions, encoding: str = "utf-8") -> LocalTextConfig:
  """A builder config whose name changes when the file(s), the split or the encoding change."""
  if not os.path.exists(path):
    raise DataError(f"text corpus {path!r} does not exist: give a text file, or a folder of *train*.txt, "
                    "*valid*.txt and *test*.txt files")
  stat_paths = sorted(glob.glob(os.path.join(path, "*"))) if os.path.isdir(path) else [path]
  name = sources.config_name([os.path.abspath(path), list(fractions), encoding], stat_paths)
  return LocalTextConfig(name=name, path=os.path.abspath(path), fractions=tuple(fractions), encoding=encoding)


def _join_source(source, separator: str) -> str:
  return separator.join(sources.as_str(record["text"]) for record in sources.read_all(source))


def _stdlib_file(data_dir: str) -> str:
  path = os.path.join(data_dir, "stdlib_docstrings.txt")
  if not os.path.exists(path):
    os.makedirs(data_dir, exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      f.write(stdlib_docstring_text())
    os.replace(path + ".tmp", path)
  return path


# Catalog datasets: name -> {our split: their split}; examples are joined by newlines. lm1b has no
# validation split: the last 1 % of its training sentences is held out as ours.
CATALOG = {
    "tiny_shakespeare": {"train": "train", "valid": "validation", "test": "test"},
    "lm1b": {"train": "train[:99%]", "valid": "train[99%:]", "test": "test"},
}


def load_text_splits(source: str = "stdlib", data_dir: str | None = None,
                     fractions: Sequence[float] = (0.9, 0.05, 0.05), download: bool = False,
                     encoding: str = "utf-8") -> dict[str, str]:
  """`{"train", "valid", "test"} -> text` for "stdlib", a path (files in `encoding`), `fetched:<name>` or
  `tfds:<catalog name>`. An empty file, or one not in `encoding`, raises DataError naming it."""
  data_dir = data_dir or DEFAULT_DATA_DIR
  if source.startswith("tfds:"):
    name = source[len("tfds:"):]
    if name not in CATALOG:
      raise ValueError(f"unsupported TFDS text dataset {name!r}; supported: {sorted(CATALOG)}")
    out = {}
    for ours, theirs in CATALOG[name].items():
      out[ours] = _join_source(sources.catalog_source(name, theirs, data_dir, download), "\n")
    return out
  path = _stdlib_file(data_dir) if source == "stdlib" else fetch.resolve(source)
  builder = sources.prepared(lambda: LocalText(config=_config_for(path, fractions, encoding), data_dir=data_dir))
  return {split: _join_source(builder.as_data_source(split=split), "") for split in SPLITS}


@dataclasses.dataclass(frozen=True)
class Vocabulary:
  """Character- or word-level vocabulary; id 0 is `<unk>`. Word level appends `<eos>` per line."""
  level: str
  tokens: tuple

  UNK = "<unk>"
  EOS = "<eos>"

  @classmethod
  def build(cls, text: str, level: str, max_size: int = 0) -> "Vocabulary":
    if level not in ("char", "word"):
      raise ValueError(f"vocabulary level must be 'char' or 'word', got {level!r}")
    counts = Counter(cls._split(text, level))
    ordered = sorted((t for t in counts if t != cls.UNK), key=lambda t: (-counts[t], t))
    if max_size:
      ordered = ordered[:max_size - 1]
    return cls(level, (cls.UNK,) + tuple(ordered))

  @staticmethod
  def _split(text: str, level: str) -> list[str]:
    if level == "char":
      return list(text)
    return [tok for line in text.splitlines() for tok in line.split() + [Vocabulary.EOS]]

  def __len__(self):
    return len(self.tokens)

  @property
  def _index(self):
    return {t: i for i, t in enumerate(self.tokens)}

  def encode(self, text: str) -> np.ndarray:
    index = self._index
    return np.asarray([index.get(t, 0) for t in self._split(text, self.level)], np.int32)

  def decode(self, ids) -> str:
    words = [self.tokens[int(i)] for i in ids]
    if self.level == "char":
      return "".join(words)
    return " ".join(words).replace(f" {self.EOS} ", "\n").replace(self.EOS, "\n")

  def to_json(self) -> str:
    return json.dumps({"level": self.level, "tokens": list(self.tokens)})

  @classmethod
  def from_json(cls, blob: str) -> "Vocabulary":
    d = json.loads(blob)
    return cls(d["level"], tuple(d["tokens"]))


def batchify(ids: np.ndarray, batch_size: int) -> np.ndarray:
  """`[N] -> [B, N // B]`: the corpus cut into `batch_size` contiguous parallel streams."""
  n = len(ids) // batch_size
  if n < 2:
    raise ValueError(f"corpus of {len(ids)} tokens is too short for batch size {batch_size}")
  return np.asarray(ids[:n * batch_size]).reshape(batch_size, n)


def num_windows(streams_BxN: np.ndarray, bptt: int) -> int:
  """How many `bptt`-step windows (inputs and next-token targets) one pass over the streams gives."""
  return (streams_BxN.shape[1] - 1) // bptt


def window(streams_BxN: np.ndarray, index: int, bptt: int):
  """`(inputs_BxT, targets_BxT)` for window `index`: consecutive windows continue each stream."""
  start = index * bptt
  return streams_BxN[:, start:start + bptt], streams_BxN[:, start + 1:start + 1 + bptt]
