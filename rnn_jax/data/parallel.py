"""Parallel text (translation pairs): sources and splits.

Every split is a list of `(source, target)` string pairs. Sources:

  number_pairs(seed=0)                                  # embedded default: numbers, English words -> French
  local_pairs(source="a.fr", target="a.en")             # line-aligned files, or local_pairs(tsv="pairs.tsv")
  tatoeba_pairs("fetched:tatoeba_fra_eng", "fr")        # Tatoeba eng-fra (manythings.org fra-eng.zip)
  catalog_pairs("ted_hrlr_translate/pt_to_en", "pt", "en")   # TFDS catalog (needs internet once)

Files go through TFDS builders written as array_record and read back with
`as_data_source()` (no TensorFlow). Tokenizers: `rnn_jax.data.tokenizers`; padded batches:
`rnn_jax.data.parallel_batches`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import zipfile
from typing import Iterable, Sequence

import tensorflow_datasets as tfds

from rnn_jax.data import fetch, sources
from rnn_jax.data.sources import DEFAULT_DATA_DIR, SPLITS


Pairs = list  # list[tuple[str, str]]


# ----------------------------------------------------------------------------- embedded default


def _number_sample(rng: random.Random, max_digits: int) -> int:
  """Digit count uniform in 1..max_digits, then uniform among numbers with that many digits."""
  digits = rng.randint(1, max_digits)
  return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits - 1)


def number_pairs(seed: int = 0, num_train: int = 20000, num_valid: int = 500, num_test: int = 1000,
                 max_digits: int = 6, source_lang: str = "en", target_lang: str = "fr") -> dict[str, Pairs]:
  """Numbers written out in words, `source_lang` -> `target_lang` (num2words), disjoint numbers per split.

  English -> French is not word for word: agreement depends on what follows ("eighty" ->
  "quatre-vingts" but "eighty-one" -> "quatre-vingt-un"; "two hundred" -> "deux cents" but
  "two hundred and one" -> "deux cent un"), one word becomes several ("seventy" ->
  "soixante-dix") and some disappear ("one thousand" -> "mille", "and"). Numbers are drawn with a
  digit count uniform in 1..max_digits, so short numbers are not swamped by long ones.
  """
  from num2words import CONVERTER_CLASSES, num2words  # pylint: disable=g-import-not-at-top
  for lang in (source_lang, target_lang):
    if lang not in CONVERTER_CLASSES:
      raise ValueError(f"num2words has no language {lang!r}; it has {sorted(CONVERTER_CLASSES)}")
  rng = random.Random(seed)
  total = num_train + num_valid + num_test
  if total > 0.8 * 10 ** max_digits:
    raise ValueError(f"{total} distinct numbers requested from only {10 ** max_digits} with {max_digits} digits")
  numbers, seen = [], set()
  while len(numbers) < total:
    n = _number_sample(rng, max_digits)
    if n not in seen:
      seen.add(n)
      numbers.append(n)
  cuts = {"train": numbers[:num_train], "valid": numbers[num_train:num_train + num_valid],
          "test": numbers[num_train + num_valid:]}
  return {split: [(num2words(n, lang=source_lang), num2words(n, lang=target_lang)) for n in ns]
          for split, ns in cuts.items()}


# ----------------------------------------------------------------------------- TFDS builders (local files)


@dataclasses.dataclass
class LocalParallelConfig(tfds.core.BuilderConfig):
  """`files`: JSON `{split: [source_path, target_path]}` or `{split: [tsv_path]}` (a str keeps it hashable)."""
  files: str = "{}"


def _read_lines(path: str) -> list[str]:
  try:
    with open(path, encoding="utf-8") as f:
      return f.read().splitlines()
  except UnicodeDecodeError as e:
    raise sources.DataError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason}): convert it to UTF-8") from None


def _file_pairs(paths: Sequence[str]) -> Pairs:
  """Pairs from two line-aligned files, or from one TSV whose first two columns are source and target."""
  if len(paths) == 2:
    source, target = _read_lines(paths[0]), _read_lines(paths[1])
    if len(source) != len(target):
      raise sources.DataError(f"{paths[0]} has {len(source)} lines but {paths[1]} has {len(target)}: "
                              "parallel files must be line-aligned")
    if not source:
      raise sources.DataError(f"{paths[0]} and {paths[1]} are empty: give one sentence per line in each")
    return list(zip(source, target))
  pairs = []
  for number, line in enumerate(_read_lines(paths[0]), 1):
    if not line.strip():
      continue
    columns = line.split("\t")
    if len(columns) < 2:
      raise sources.DataError(f"{paths[0]}:{number}: expected at least two tab-separated columns, got {line!r}")
    pairs.append((columns[0], columns[1]))
  if not pairs:
    raise sources.DataError(f"{paths[0]} holds no sentence pairs: give one source<TAB>target pair per line")
  return pairs


class LocalParallel(tfds.core.GeneratorBasedBuilder):
  """Local parallel text files as `{"source", "target"}` examples, in file order."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, description="Local parallel text",
        features=tfds.features.FeaturesDict({"source": tfds.features.Text(), "target": tfds.features.Text()}),
        disable_shuffling=True)

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(paths) for split, paths in json.loads(self.builder_config.files).items()}

  def _generate_examples(self, paths):
    for i, (source, target) in enumerate(_file_pairs(paths)):
      yield i, {"source": source, "target": target}


def _read_source(source, source_key: str, target_key: str) -> Pairs:
  """All examples of a data source as (source, target) pairs."""
  return [(sources.as_str(r[source_key]), sources.as_str(r[target_key])) for r in sources.read_all(source)]


def local_pairs(source: str = "", target: str = "", tsv: str = "", valid: Sequence[str] = (),
                test: Sequence[str] = (), data_dir: str | None = None) -> dict[str, Pairs]:
  """Splits read from a user's files: `source` + `target` line-aligned files, or a two-column `tsv`.

  `valid` / `test` are optional `[source_path, target_path]` or `[tsv_path]`; splits not
  given are absent from the result (see `split_by_fraction`).
  """
  if bool(tsv) == bool(source or target):
    raise ValueError("give either a TSV file (data.tsv) or two line-aligned files (data.source and data.target)")
  if not tsv and not (source and target):
    raise ValueError(f"line-aligned parallel text needs both files, got source={source!r} target={target!r}")
  files = {"train": [tsv] if tsv else [source, target]}
  for split, paths in (("valid", valid), ("test", test)):
    if paths:
      files[split] = list(paths)
  files = {split: [os.path.abspath(p) for p in paths] for split, paths in files.items()}
  for path in (p for paths in files.values() for p in paths):
    if not os.path.isfile(path):
      raise sources.DataError(f"parallel text file {path!r} does not exist")
  builder = sources.prepared(lambda: LocalParallel(
      config=LocalParallelConfig(name=sources.config_name(files, [p for paths in files.values() for p in paths]),
                                 files=json.dumps(files)),
      data_dir=data_dir or DEFAULT_DATA_DIR))
  return {split: _read_source(builder.as_data_source(split=split), "source", "target") for split in files}


class TatoebaFraEng(tfds.core.GeneratorBasedBuilder):
  """Tatoeba English-French pairs (CC BY 2.0) from manythings.org's `fra-eng.zip` in `manual_dir`."""

  VERSION = tfds.core.Version("1.0.0")
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Place fra-eng.zip (from https://www.manythings.org/anki/) in manual_dir."

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, description="Tatoeba English-French sentence pairs (manythings.org/anki, CC BY 2.0)",
        features=tfds.features.FeaturesDict({"en": tfds.features.Text(), "fr": tfds.features.Text()}),
        homepage="https://tatoeba.org", disable_shuffling=True)

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples(os.path.join(dl_manager.manual_dir, "fra-eng.zip"))}

  def _generate_examples(self, zip_path):
    with zipfile.ZipFile(zip_path) as archive:
      text = archive.read("fra.txt").decode("utf-8")
    for i, line in enumerate(text.splitlines()):
      columns = line.split("\t")
      if len(columns) >= 2:
        yield i, {"en": columns[0], "fr": columns[1]}


def tatoeba_pairs(zip_path: str, source_lang: str = "fr", data_dir: str | None = None) -> Pairs:
  """All Tatoeba pairs as `(source, target)`, `source_lang` "fr" (fr -> en) or "en" (en -> fr).
  `zip_path`: fra-eng.zip, or "fetched:tatoeba_fra_eng"."""
  if source_lang not in ("fr", "en"):
    raise ValueError(f"Tatoeba source language must be 'fr' or 'en', got {source_lang!r}")
  zip_path = fetch.resolve(zip_path)
  if not os.path.isfile(zip_path):
    raise sources.DataError(f"Tatoeba archive {zip_path!r} does not exist")
  builder = sources.prepared(
      lambda: TatoebaFraEng(data_dir=data_dir or DEFAULT_DATA_DIR),
      download_config=tfds.download.DownloadConfig(manual_dir=os.path.dirname(os.path.abspath(zip_path))))
  return _read_source(builder.as_data_source(split="train"), source_lang, "en" if source_lang == "fr" else "fr")


# Catalog datasets: name -> {our split: their split}. Language keys are the dataset's feature names.
CATALOG = {
    "ted_hrlr_translate/pt_to_en": {"train": "train", "valid": "validation", "test": "test"},
    "wmt14_translate/de-en": {"train": "train", "valid": "validation", "test": "test"},
}


def catalog_pairs(name: str, source_lang: str, target_lang: str, data_dir: str | None = None,
                  download: bool = True, splits: Iterable[str] = SPLITS) -> dict[str, Pairs]:
  """Splits of a TFDS catalog translation dataset (array_record, read with `tfds.data_source`)."""
  if name not in CATALOG:
    raise ValueError(f"unsupported TFDS translation dataset {name!r}; supported: {sorted(CATALOG)}")
  if name.startswith("wmt14_translate"):
    import tensorflow_datasets.translate.wmt14  # pylint: disable=g-import-not-at-top,unused-import  # registers it
  out = {}
  for split in splits:
    ds = sources.catalog_source(name, CATALOG[name][split], data_dir or DEFAULT_DATA_DIR, download)
    out[split] = _read_source(ds, source_lang, target_lang)
  return out


# ----------------------------------------------------------------------------- splitting and filtering


def filter_by_length(pairs: Pairs, max_words: int) -> Pairs:
  """Pairs whose source and target both have at most `max_words` whitespace-separated words (0: all)."""
  if max_words <= 0:
    return list(pairs)
  return [(s, t) for s, t in pairs if len(s.split()) <= max_words and len(t.split()) <= max_words]


def split_by_source(pairs: Pairs, num_valid: int, num_test: int, seed: int = 0) -> dict[str, Pairs]:
  """Held-out splits of exactly `num_valid` / `num_test` pairs whose source sentences never occur in train.

  Sources are visited in a seeded random order and all pairs of one source go to the same
  split, so a held-out source has no translation in training (Tatoeba repeats sources).
  Pairs of the last source that would overflow a held-out split are dropped.
  """
  by_source: dict[str, list] = {}
  for pair in pairs:
    by_source.setdefault(pair[0], []).append(pair)
  sources = sorted(by_source)
  random.Random(seed).shuffle(sources)
  out = {"valid": [], "test": [], "train": []}
  wanted = {"valid": num_valid, "test": num_test}
  for source in sources:
    group = by_source[source]
    split = next((s for s in ("test", "valid") if len(out[s]) < wanted[s]), "train")
    out[split].extend(group if split == "train" else group[:wanted[split] - len(out[split])])
  if len(out["test"]) < num_test or len(out["valid"]) < num_valid:
    raise ValueError(f"only {len(pairs)} pairs: too few for {num_valid} valid and {num_test} test pairs")
  return out


def split_by_fraction(splits: dict[str, Pairs], valid_fraction: float, test_fraction: float,
                      seed: int = 0) -> dict[str, Pairs]:
  """Fills missing valid/test splits with seeded fractions of train (held-out sources not in train)."""
  if "valid" in splits and "test" in splits:
    return dict(splits)
  train = splits["train"]
  num_valid = 0 if "valid" in splits else max(1, round(valid_fraction * len(train)))
  num_test = 0 if "test" in splits else max(1, round(test_fraction * len(train)))
  out = split_by_source(train, num_valid, num_test, seed)
  return {"train": out["train"], "valid": splits.get("valid", out["valid"]), "test": splits.get("test", out["test"])}
