"""Which parallel text a config names, and its tokenizers (trained on train, kept in the workdir)."""

from __future__ import annotations

import glob
import os

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


_VOCABULARY_FIELDS = ("tokenizer", "source_vocab_size", "target_vocab_size", "lowercase")  # of config.data


def tokenizers(config, splits, workdir: str):
  """`(source_tokenizer, target_tokenizer)`: the ones `workdir`'s run saved, else trained on train (the train
  loop saves them, as `vocabulary_files` gives them, once the workdir's checkpoint is found compatible)."""
  d = config.data
  saved = _saved_paths(workdir)
  if not all(saved.values()):
    return tuple(tokenizer_lib.train_tokenizer(d.tokenizer, [pair[column] for pair in splits["train"]], size,
                                               d.lowercase)
                 for column, size in ((0, d.source_vocab_size), (1, d.target_vocab_size)))
  suffix = tokenizer_lib.TOKENIZER_SUFFIXES[d.tokenizer]
  if not all(path.endswith(suffix) for path in saved.values()):
    raise train.ConfigError(f"{workdir} holds the vocabularies {sorted(map(os.path.basename, saved.values()))} of "
                            f"another tokenizer than config.data.tokenizer={d.tokenizer!r}: use another --workdir")
  if os.path.exists(os.path.join(workdir, "config.json")):
    made_with = train.load_config(workdir).data
    changed = [field for field in _VOCABULARY_FIELDS if made_with[field] != d[field]]
    if changed:
      raise train.ConfigError(f"{workdir}'s vocabularies were made with config.data.{changed[0]}="
                              f"{made_with[changed[0]]!r}, not {d[changed[0]]!r}: use another --workdir, or that value")
  return saved_tokenizers(workdir)


def vocabulary_files(source_tok, target_tok) -> dict[str, bytes]:
  """`{file name: contents}` of the two vocabularies, as `saved_tokenizers` reads them back."""
  return {source_tok.file_name("source"): source_tok.serialized(),
          target_tok.file_name("target"): target_tok.serialized()}


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
