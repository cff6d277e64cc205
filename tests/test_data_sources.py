"""Batched reads of prepared TFDS sources equal reading every record by index."""

import logging

import tensorflow_datasets as tfds

from rnn_jax.data import sources, text


def test_batched_reads_equal_single_reads_across_batch_boundaries(tmp_path, monkeypatch):
  corpus = tmp_path / "corpus.txt"
  corpus.write_text("".join(f"line {i} of the corpus\n" for i in range(40_000)))  # ~0.9 MB: 14 records
  builder = text.LocalText(config=text._config_for(str(corpus), (0.9, 0.05, 0.05)), data_dir=str(tmp_path / "tfds"))
  builder.download_and_prepare(file_format="array_record")
  source = builder.as_data_source(split="train")
  monkeypatch.setattr(sources, "_READ_BATCH", 3)  # several batches, the last one partial
  one_by_one = [source[i] for i in range(len(source))]
  assert len(source) > 3 * 3 and sources.read_all(source) == one_by_one
  joined = "".join(sources.as_str(r["text"]) for r in one_by_one)
  assert joined == text.split_by_fraction(corpus.read_text(), (0.9, 0.05, 0.05))["train"]


def test_mock_data_sources_are_read_one_by_one():
  with tfds.testing.mock_data(num_examples=5):
    source = tfds.data_source("tiny_shakespeare", split="train")
    records = sources.read_all(source)
  assert len(records) == 5 and all(isinstance(sources.as_str(r["text"]), str) for r in records)


def test_first_preparation_says_so_and_how_long_it_runs_without_tfds_chatter(tmp_path, monkeypatch, caplog):
  corpus = tmp_path / "corpus.txt"
  corpus.write_text("".join(f"line {i} of the corpus\n" for i in range(40_000)))
  monkeypatch.setattr(sources, "HEARTBEAT_S", 0.01)  # the real interval is 10 s
  make = lambda: text.LocalText(config=text._config_for(str(corpus), (0.9, 0.05, 0.05)),
                                data_dir=str(tmp_path / "tfds"))
  with caplog.at_level(logging.INFO, logger="absl"):
    sources.prepared(make)
  messages = [r.getMessage() for r in caplog.records]
  assert messages[0].startswith("preparing local_text in ")
  assert len(messages) > 1 and all(m.startswith("preparing local_text: ") and m.endswith(" s so far")
                                   for m in messages[1:])
  caplog.clear()
  with caplog.at_level(logging.INFO, logger="absl"):
    sources.prepared(make)  # prepared already: nothing to say
  assert not caplog.records


def test_a_corpus_prepared_by_another_process_meanwhile_is_read_not_refused(tmp_path):
  """Two programs started at once on one new corpus (the side-by-side LM comparison) both prepare it; the one
  that finishes second finds the other's copy in place."""
  corpus = tmp_path / "corpus.txt"
  corpus.write_text("".join(f"line {i} of the corpus\n" for i in range(2_000)))
  make = lambda: text.LocalText(config=text._config_for(str(corpus), (0.9, 0.05, 0.05)),
                                data_dir=str(tmp_path / "tfds"))
  slow = make()
  original = slow._download_and_prepare

  def overtaken(*args, **kwargs):
    make().download_and_prepare(file_format="array_record")  # the other process finishes first
    return original(*args, **kwargs)

  slow._download_and_prepare = overtaken
  builders = iter([slow])
  builder = sources.prepared(lambda: next(builders, None) or make())
  assert builder.is_prepared() and builder is not slow
  assert builder.info.splits["train"].num_examples == make().info.splits["train"].num_examples
