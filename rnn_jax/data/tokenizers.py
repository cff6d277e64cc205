"""Tokenizers for translation: word-level (`WordTokenizer`) and subword (`SentencePieceTokenizer`).

  tokenizer = tokenizers.train_tokenizer("word", train_texts, vocab_size=8000)
  ids = tokenizer.encode("Il pleut."); text = tokenizer.decode(ids)
  path = tokenizer.save(prefix); tokenizer = tokenizers.load_tokenizer(path)   # next to a checkpoint
  {tokenizer.file_name(prefix): tokenizer.serialized()}   # the same file, for a train.Task's `files`

Both share the special ids PAD=0, BOS=1, EOS=2, UNK=3.
"""

from __future__ import annotations

import abc
import io
import json
import re
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
TOKENIZER_SUFFIXES = {"word": ".words.json", "sentencepiece": ".spm.model"}  # kind -> the end of its file name


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
  kind: str  # "word" or "sentencepiece" (a key of TOKENIZER_SUFFIXES)

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
  def serialized(self) -> bytes:
    """The vocabulary as its file holds it."""

  def file_name(self, path_prefix: str) -> str:
    return path_prefix + TOKENIZER_SUFFIXES[self.kind]

  def save(self, path_prefix: str) -> str:
    """Writes the vocabulary next to a checkpoint; returns the path (`load_tokenizer` reads it)."""
    path = self.file_name(path_prefix)
    with open(path, "wb") as f:
      f.write(self.serialized())
    return path


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

  kind = "word"

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

  def serialized(self):
    return json.dumps({"words": list(self.words), "lowercase": self.lowercase}, ensure_ascii=False).encode("utf-8")


class SentencePieceTokenizer(Tokenizer):
  """Subword vocabulary (sentencepiece unigram or BPE) trained on the training split."""

  kind = "sentencepiece"

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

  def serialized(self):
    return self.model_proto


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
