"""Parallel text (translation pairs): sources, tokenizers, and padded batches.

Every split is a list of `(source, target)` string pairs. Sources:

  number_pairs(seed=0)                                  # embedded default: numbers, English words -> French
  local_pairs(source="a.fr", target="a.en")             # line-aligned files, or local_pairs(tsv="pairs.tsv")
  tatoeba_pairs("fetched:tatoeba_fra_eng", "fr")        # Tatoeba eng-fra (manythings.org fra-eng.zip)
  catalog_pairs("ted_hrlr_translate/pt_to_en", "pt", "en")   # TFDS catalog (needs internet once)

Files go through TFDS builders written as array_record and read back with
`as_data_source()` (no TensorFlow). Tokenizers (`WordTokenizer`, `SentencePieceTokenizer`)
share ids PAD=0, BOS=1, EOS=2, UNK=3 and are saved next to a checkpoint.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import io
import json
import os
import random
import re
import zipfile
from collections import Counter
from typing import Iterable, Sequence

import numpy as np
import tensorflow_datasets as tfds

from rnn_jax.data import fetch, sources
from rnn_jax.data.sources import DEFAULT_DATA_DIR, SPLITS

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
TOKENIZER_SUFFIXES = {"word": ".words.json", "sentencepiece": ".spm.model"}  # kind -> file `save` writes

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


def _fingerprint(files: dict) -> str:
  stats = [[p, os.path.getsize(p), os.path.getmtime(p)] for paths in files.values() for p in paths]
  return "c" + hashlib.sha1(json.dumps([files, stats], sort_keys=True).encode()).hexdigest()[:16]


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
      raise FileNotFoundError(f"parallel text file {path!r} does not exist")
  builder = sources.prepared(lambda: LocalParallel(
      config=LocalParallelConfig(name=_fingerprint(files), files=json.dumps(files)), data_dir=data_dir or DEFAULT_DATA_DIR))
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
    raise FileNotFoundError(f"Tatoeba archive {zip_path!r} does not exist")
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


# ----------------------------------------------------------------------------- tokenizers

_WORD_RE = re.compile(r"\w+|[^\w\s]")
_NO_SPACE_BEFORE = re.compile(r" ([.,!?;:%)\]}'’\-])")
_NO_SPACE_AFTER = re.compile(r"([(\[{¿¡'’\-]) ")


def word_split(text: str, lowercase: bool = False) -> list[str]:
  """Words and single punctuation marks: "Qu'est-ce ?" -> ["Qu", "'", "est", "-", "ce", "?"]."""
  return _WORD_RE.findall(text.lower() if lowercase else text)


def word_join(words: Sequence[str]) -> str:
  """Inverse of `word_split` up to spacing around punctuation (what BLEU's own tokenizer undoes)."""
  return _NO_SPACE_AFTER.sub(r"\1", _NO_SPACE_BEFORE.sub(r"\1", " ".join(words)))


class Tokenizer(abc.ABC):
  """Shared interface; `vocab_size` includes the four special ids."""

  vocab_size: int

  @abc.abstractmethod
  def encode(self, text: str) -> np.ndarray:
    """int32 ids of `text`, without BOS/EOS."""

  @abc.abstractmethod
  def decode(self, ids) -> str:
    """Detokenised text of `ids` up to the first EOS (PAD and BOS skipped)."""

  @abc.abstractmethod
  def tokens(self, text: str) -> list[str]:
    """The word/subword strings of `text` (for plot labels)."""

  @abc.abstractmethod
  def id_to_token(self, token_id: int) -> str:
    """The string of one id (for plot labels)."""

  @abc.abstractmethod
  def save(self, path_prefix: str) -> str:
    """Writes the vocabulary next to a checkpoint; returns the path (`load_tokenizer` reads it)."""


def _until_eos(ids) -> list[int]:
  out = []
  for i in np.asarray(ids).tolist():
    if i == EOS:
      break
    if i not in (PAD, BOS):
      out.append(i)
  return out


class WordTokenizer(Tokenizer):
  """Word-level vocabulary of the most frequent training words (ties by first occurrence)."""

  def __init__(self, words: Sequence[str], lowercase: bool = False):
    self.words = tuple(words)
    self.lowercase = lowercase
    self.vocab_size = len(self.words)
    self._index = {w: i for i, w in enumerate(self.words)}

  @classmethod
  def train(cls, texts: Iterable[str], max_size: int = 0, lowercase: bool = False) -> "WordTokenizer":
    counts = Counter(w for text in texts for w in word_split(text, lowercase))
    ordered = [w for w, _ in counts.most_common(max_size - len(SPECIALS) if max_size else None)]
    return cls(SPECIALS + tuple(ordered), lowercase)

  def tokens(self, text):
    return word_split(text, self.lowercase)

  def id_to_token(self, token_id):
    return self.words[token_id]

  def encode(self, text):
    return np.asarray([self._index.get(w, UNK) for w in self.tokens(text)], np.int32)

  def decode(self, ids):
    return word_join([self.words[i] for i in _until_eos(ids)])

  def save(self, path_prefix):
    path = path_prefix + TOKENIZER_SUFFIXES["word"]
    with open(path, "w", encoding="utf-8") as f:
      json.dump({"words": list(self.words), "lowercase": self.lowercase}, f, ensure_ascii=False)
    return path


class SentencePieceTokenizer(Tokenizer):
  """Subword vocabulary (sentencepiece unigram or BPE) trained on the training split."""

  def __init__(self, model_proto: bytes):
    import sentencepiece as spm  # pylint: disable=g-import-not-at-top
    self.model_proto = model_proto
    self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
    self.vocab_size = self._sp.get_piece_size()

  @classmethod
  def train(cls, texts: Iterable[str], vocab_size: int = 8000, model_type: str = "unigram",
            character_coverage: float = 1.0) -> "SentencePieceTokenizer":
    """Deterministic for given texts (one training thread)."""
    import sentencepiece as spm  # pylint: disable=g-import-not-at-top
    texts = [t for t in texts if t.strip()]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type=model_type,
        character_coverage=character_coverage, pad_id=PAD, bos_id=BOS, eos_id=EOS, unk_id=UNK,
        hard_vocab_limit=False, num_threads=1, minloglevel=2)
    return cls(model.getvalue())

  def tokens(self, text):
    return self._sp.encode(text, out_type=str)

  def id_to_token(self, token_id):
    return self._sp.id_to_piece(int(token_id))

  def encode(self, text):
    return np.asarray(self._sp.encode(text), np.int32)

  def decode(self, ids):
    return self._sp.decode(_until_eos(ids))

  def save(self, path_prefix):
    path = path_prefix + TOKENIZER_SUFFIXES["sentencepiece"]
    with open(path, "wb") as f:
      f.write(self.model_proto)
    return path


def load_tokenizer(path: str) -> Tokenizer:
  """A tokenizer written by `save` (`*.words.json` or `*.spm.model`)."""
  if path.endswith(TOKENIZER_SUFFIXES["word"]):
    with open(path, encoding="utf-8") as f:
      blob = json.load(f)
    return WordTokenizer(blob["words"], blob["lowercase"])
  if path.endswith(TOKENIZER_SUFFIXES["sentencepiece"]):
    with open(path, "rb") as f:
      return SentencePieceTokenizer(f.read())
  raise ValueError(f"unknown tokenizer file {path!r}: expected *.words.json or *.spm.model")


def train_tokenizer(kind: str, texts: Sequence[str], vocab_size: int, lowercase: bool = False) -> Tokenizer:
  """`kind` "word" (vocab_size most frequent words, 0: all) or "sentencepiece" (subwords)."""
  if kind == "word":
    return WordTokenizer.train(texts, vocab_size, lowercase)
  if kind == "sentencepiece":
    return SentencePieceTokenizer.train(texts, vocab_size)
  raise ValueError(f"tokenizer must be 'word' or 'sentencepiece', got {kind!r}")


# ----------------------------------------------------------------------------- padded batches


def encode_pairs(pairs: Pairs, source_tok: Tokenizer, target_tok: Tokenizer, max_tokens: int = 0):
  """`(source_ids, target_ids)`: lists of int32 arrays; both sides truncated to `max_tokens` (0: no limit)."""
  cut = (lambda x: x[:max_tokens]) if max_tokens else (lambda x: x)
  return ([cut(source_tok.encode(s)) for s, _ in pairs], [cut(target_tok.encode(t)) for _, t in pairs])


def _width(longest: int, pad_to_multiple: int, fixed: int = 0) -> int:
  if fixed:
    return max(fixed, longest)
  if pad_to_multiple <= 0:
    return max(1, longest)
  return max(pad_to_multiple, -(-longest // pad_to_multiple) * pad_to_multiple)


def pad_batch(sources: Sequence[np.ndarray], targets: Sequence[np.ndarray] | None = None,
              pad_to_multiple: int = 8, widths: tuple[int, int] = (0, 0)) -> dict[str, np.ndarray]:
  """Right-padded arrays, each width rounded up to `pad_to_multiple` (few distinct shapes to compile)
  or, where `widths` gives one (source, target), padded to exactly that (one shape).

  Returns `source [B, S]`, `source_lengths [B]` and, with targets, `target_in [B, T]`
  (BOS + target), `target_out [B, T]` (target + EOS) and `target_lengths [B]` (target + 1).
  """
  source_lengths = np.asarray([len(s) for s in sources], np.int32)
  source = np.full((len(sources), _width(int(source_lengths.max(initial=1)), pad_to_multiple, widths[0])), PAD,
                   np.int32)
  for i, s in enumerate(sources):
    source[i, :len(s)] = s
  batch = {"source": source, "source_lengths": source_lengths}
  if targets is not None:
    target_lengths = np.asarray([len(t) + 1 for t in targets], np.int32)
    width = _width(int(target_lengths.max(initial=1)), pad_to_multiple, widths[1])
    target_in = np.full((len(targets), width), PAD, np.int32)
    target_out = np.full((len(targets), width), PAD, np.int32)
    for i, t in enumerate(targets):
      target_in[i, 0], target_in[i, 1:len(t) + 1] = BOS, t
      target_out[i, :len(t)], target_out[i, len(t)] = t, EOS
    batch.update(target_in=target_in, target_out=target_out, target_lengths=target_lengths)
  return batch


def fixed_widths(sources, targets=None) -> tuple[int, int]:
  """`(S, T)` that fit every pair: padding all batches to them gives a single compiled shape."""
  return (max(1, max((len(s) for s in sources), default=1)),
          max(1, max((len(t) + 1 for t in targets), default=1)) if targets is not None else 0)


class TrainBatches:
  """Batch `step` as a pure function of the step: length-bucketed, shuffled per epoch with a seed.

  Each epoch is a seeded permutation; within chunks of `bucket_batches` batches the pairs
  are sorted by length, so a batch holds pairs of similar length (little padding), and
  the batches are then shuffled. Pairs beyond the last full batch of an epoch are skipped
  (a different set each epoch). `pad_to_multiple=0` pads every batch to the longest pair.
  """

  def __init__(self, sources, targets, batch_size: int, seed: int = 0, bucket_batches: int = 50,
               pad_to_multiple: int = 8):
    if len(sources) < batch_size:
      raise ValueError(f"{len(sources)} training pairs are fewer than the batch size {batch_size}")
    self.sources, self.targets = sources, targets
    self.batch_size, self.seed = batch_size, seed
    self.bucket_batches, self.pad_to_multiple = bucket_batches, pad_to_multiple
    self.widths = fixed_widths(sources, targets) if pad_to_multiple == 0 else (0, 0)
    self.steps_per_epoch = len(sources) // batch_size
    self._epoch, self._order = -1, None

  def _epoch_order(self, epoch: int) -> np.ndarray:
    rng = np.random.default_rng([self.seed, epoch])
    order = rng.permutation(len(self.sources))[:self.steps_per_epoch * self.batch_size]
    chunk = self.batch_size * self.bucket_batches
    lengths = np.asarray([len(s) + len(t) for s, t in zip(self.sources, self.targets)])
    for start in range(0, len(order), chunk):
      part = order[start:start + chunk]
      order[start:start + chunk] = part[np.argsort(lengths[part], kind="stable")]
    batches = order.reshape(self.steps_per_epoch, self.batch_size)
    return batches[rng.permutation(self.steps_per_epoch)]

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    epoch, index = divmod(step, self.steps_per_epoch)
    if epoch != self._epoch:
      self._epoch, self._order = epoch, self._epoch_order(epoch)
    rows = self._order[index]
    return pad_batch([self.sources[i] for i in rows], [self.targets[i] for i in rows], self.pad_to_multiple,
                     self.widths)


def eval_batches(sources, targets=None, batch_size: int = 64, pad_to_multiple: int = 8):
  """`(indices, batch)` over all pairs sorted by source length; the last batch is topped up with copies
  of its first pair so that every batch has `batch_size` rows (callers keep only `indices`).
  `pad_to_multiple=0` pads every batch to the longest pair."""
  widths = fixed_widths(sources, targets) if pad_to_multiple == 0 else (0, 0)
  order = np.argsort([len(s) for s in sources], kind="stable")
  for start in range(0, len(order), batch_size):
    rows = order[start:start + batch_size]
    full = np.concatenate([rows, np.full(batch_size - len(rows), rows[0])])
    yield rows, pad_batch([sources[i] for i in full], None if targets is None else [targets[i] for i in full],
                          pad_to_multiple, widths)
