"""Which parallel text a config names, and its tokenizers (trained on train, saved in the workdir)."""

from __future__ import annotations

import glob
import os

from absl import logging

from rnn_jax import train
from rnn_jax.data import parallel
from rnn_jax.data import tokenizers as tokenizer_lib

DATASETS = ("numbers", "files", "tatoeba", "tfds")


def dataset_name(config) -> str:
  """`config.data.name`, except that giving `data.source`/`data.target` or `data.tsv` selects "files"."""
  d = config.data
  if d.source or d.target or d.tsv:
    return "files"
  if d.name not in DATASETS:
    raise ValueError(f"config.data.name must be one of {DATASETS}, got {d.name!r}")
  return d.name


def _optional_pair(source: str, target: str) -> list[str]:
  if bool(source) != bool(target):
    raise ValueError(f"give both or neither of a held-out source and target file, got {source!r}, {target!r}")
  return [source, target] if source else []


def load_splits(config) -> dict[str, list]:
  """`{"train", "valid", "test"} -> [(source, target)]` for the config's dataset."""
  d, name = config.data, dataset_name(config)
  data_dir = d.tfds_dir or None
  if name == "numbers":
    return parallel.number_pairs(config.seed, d.num_train, d.num_valid, d.num_test, d.max_digits,
                                 d.source_lang or "en", d.target_lang or "fr")
  if name == "files":
    splits = parallel.local_pairs(d.source, d.target, d.tsv,
                                  valid=[d.valid_tsv] if d.valid_tsv else _optional_pair(d.valid_source, d.valid_target),
                                  test=[d.test_tsv] if d.test_tsv else _optional_pair(d.test_source, d.test_target),
                                  data_dir=data_dir)
    splits["train"] = parallel.filter_by_length(splits["train"], d.max_words)
    return parallel.split_by_fraction(splits, d.valid_fraction, d.test_fraction, config.seed)
  if name == "tatoeba":
    pairs = parallel.filter_by_length(parallel.tatoeba_pairs(d.tatoeba_zip, d.source_lang or "fr", data_dir),
                                      d.max_words)
    return parallel.split_by_source(pairs, d.num_valid, d.num_test, config.seed)
  splits = parallel.catalog_pairs(d.tfds_name, d.source_lang, d.target_lang, data_dir, d.download)
  splits["train"] = parallel.filter_by_length(splits["train"], d.max_words)
  return splits


def tokenizers(config, splits, workdir: str):
  """`(source_tokenizer, target_tokenizer)`: read from `workdir` if saved there, else trained on train and saved."""
  d = config.data
  saved = _saved_paths(workdir)
  if all(saved.values()):
    suffix = tokenizer_lib.TOKENIZER_SUFFIXES[d.tokenizer]
    if not all(path.endswith(suffix) for path in saved.values()):
      raise train.ConfigError(f"{workdir} holds the vocabularies {sorted(map(os.path.basename, saved.values()))} of "
                              f"another tokenizer than config.data.tokenizer={d.tokenizer!r}: use another --workdir")
    return saved_tokenizers(workdir)
  toks = []
  for side, column, size in (("source", 0, d.source_vocab_size), ("target", 1, d.target_vocab_size)):
    tok = tokenizer_lib.train_tokenizer(d.tokenizer, [pair[column] for pair in splits["train"]], size, d.lowercase)
    os.makedirs(workdir, exist_ok=True)
    logging.info("%s vocabulary: %d %s tokens -> %s", side, tok.vocab_size, d.tokenizer,
                 tok.save(os.path.join(workdir, side)))
    toks.append(tok)
  return tuple(toks)


def _saved_paths(workdir: str) -> dict[str, str]:
  paths = {}
  for side in ("source", "target"):
    matches = [p for p in sorted(glob.glob(os.path.join(workdir, f"{side}.*")))
               if p.endswith(tuple(tokenizer_lib.TOKENIZER_SUFFIXES.values()))]
    paths[side] = matches[0] if matches else ""
  return paths


def saved_tokenizers(workdir: str):
  """The tokenizers a training run saved in `workdir` (for translating with its checkpoint)."""
  paths = _saved_paths(workdir)
  for side, path in paths.items():
    if not path:
      raise train.NotTrainedError(f"no {side} vocabulary ({side}.words.json or {side}.spm.model) in {workdir}: "
                                  "train with this --workdir first")
  return tokenizer_lib.load_tokenizer(paths["source"]), tokenizer_lib.load_tokenizer(paths["target"])
