"""Translation: data sources and tokenizers, the Seq2Seq model, BLEU, and learning the number task."""

import collections
import json
import logging
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sacrebleu
import tensorflow_datasets as tfds

from experiments import progress
from experiments.translation import data, experiment
from experiments.translation.configs import numbers
from experiments.translation.model import ATTENTIONS, Seq2Seq, reverse_within_lengths
from rnn_jax import decoding, train
from rnn_jax.data import parallel, parallel_batches, tokenizers
from rnn_jax.train import workdir as workdir_lib
from tests.conftest import fetched_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------- data


def test_number_pairs_are_disjoint_translations():
  from num2words import num2words
  splits = parallel.number_pairs(seed=3, num_train=300, num_valid=50, num_test=80, max_digits=4)
  assert [len(splits[s]) for s in parallel.SPLITS] == [300, 50, 80]
  sources = {s: {src for src, _ in splits[s]} for s in parallel.SPLITS}
  assert not sources["train"] & sources["test"] and not sources["train"] & sources["valid"]
  for src, tgt in splits["test"][:5]:
    n = next(k for k in range(10000) if num2words(k) == src)
    assert tgt == num2words(n, lang="fr")
  assert parallel.number_pairs(seed=3, num_train=300, num_valid=50, num_test=80, max_digits=4) == splits
  with pytest.raises(ValueError, match="num2words has no language 'xx'"):
    parallel.number_pairs(seed=3, num_train=3, num_valid=1, num_test=1, source_lang="xx")


def test_split_by_source_keeps_held_out_sources_out_of_train():
  pairs = [(f"s{i % 40}", f"t{i}") for i in range(100)]  # sources repeat, as in Tatoeba
  splits = parallel.split_by_source(pairs, num_valid=7, num_test=11, seed=1)
  assert len(splits["valid"]) == 7 and len(splits["test"]) == 11
  train_sources = {s for s, _ in splits["train"]}
  assert not train_sources & {s for s, _ in splits["valid"] + splits["test"]}
  assert len(splits["train"]) + 18 <= 100


def test_word_tokenizer_roundtrip_and_vocab_limit(tmp_path):
  texts = ["Qu'est-ce que c'est ?", "Il a vingt-trois ans.", "Il a vingt ans."]
  tok = tokenizers.WordTokenizer.train(texts, max_size=10)
  assert tok.vocab_size == 10 and tok.words[:4] == tokenizers.SPECIALS
  assert tok.words[4:6] == ("'", "est")  # most frequent first (ties by first occurrence)
  ids = tok.encode("Il a cent ans.")
  assert tokenizers.UNK in ids.tolist()
  full = tokenizers.WordTokenizer.train(texts)
  for text in texts:
    assert sacrebleu.corpus_bleu([full.decode(full.encode(text))], [[text]]).score == pytest.approx(100.0)
  again = tokenizers.load_tokenizer(full.save(str(tmp_path / "target")))
  np.testing.assert_array_equal(again.encode(texts[0]), full.encode(texts[0]))
  assert full.decode(np.concatenate([full.encode(texts[1]), [tokenizers.EOS, 5, 6]])) == "Il a vingt-trois ans."


def test_sentencepiece_tokenizer_roundtrip(tmp_path):
  texts = [b for _, b in parallel.number_pairs(num_train=400, num_valid=1, num_test=1)["train"]]
  tok = tokenizers.SentencePieceTokenizer.train(texts, vocab_size=60)
  assert tok._sp.pad_id() == tokenizers.PAD and tok._sp.eos_id() == tokenizers.EOS
  for text in texts[:20]:
    assert tok.decode(tok.encode(text)) == text
  again = tokenizers.load_tokenizer(tok.save(str(tmp_path / "source")))
  np.testing.assert_array_equal(again.encode(texts[0]), tok.encode(texts[0]))


def test_pad_batch_layout():
  batch = parallel_batches.pad_batch([np.array([5, 6, 7]), np.array([8])], [np.array([9, 10]), np.array([11, 12, 13])],
                             pad_to_multiple=4)
  np.testing.assert_array_equal(batch["source"], [[5, 6, 7, 0], [8, 0, 0, 0]])
  np.testing.assert_array_equal(batch["source_lengths"], [3, 1])
  np.testing.assert_array_equal(batch["target_in"], [[1, 9, 10, 0], [1, 11, 12, 13]])
  np.testing.assert_array_equal(batch["target_out"], [[9, 10, 2, 0], [11, 12, 13, 2]])
  np.testing.assert_array_equal(batch["target_lengths"], [3, 4])


def test_train_batches_are_a_function_of_the_step_and_cover_an_epoch():
  sources = [np.arange(1 + i % 9) + 4 for i in range(50)]
  targets = [np.arange(1 + i % 5) + 4 for i in range(50)]
  make = lambda: parallel_batches.TrainBatches(sources, targets, batch_size=8, seed=2, bucket_batches=2)
  a, b = make(), make()
  for step in (3, 0, 9, 3):  # any order, any instance: same batch
    for k, v in a(step).items():
      np.testing.assert_array_equal(v, b(step)[k])
  seen = collections.Counter()
  for step in range(a.steps_per_epoch):
    batch = a(step)
    seen.update(int(x) for x in batch["source_lengths"])
  assert sum(seen.values()) == 48  # 6 full batches of 8
  fixed = parallel_batches.TrainBatches(sources, targets, batch_size=8, pad_to_multiple=0)
  assert {fixed(s)["source"].shape for s in range(6)} == {(8, 9)}


def test_local_files_tsv_and_fraction_split(tmp_path):
  pairs = parallel.number_pairs(seed=5, num_train=200, num_valid=1, num_test=1, max_digits=3)["train"]
  (tmp_path / "train.en").write_text("\n".join(s for s, _ in pairs) + "\n", encoding="utf-8")
  (tmp_path / "train.fr").write_text("\n".join(t for _, t in pairs) + "\n", encoding="utf-8")
  (tmp_path / "train.tsv").write_text("".join(f"{s}\t{t}\tcc-by\n" for s, t in pairs), encoding="utf-8")
  data_dir = str(tmp_path / "tfds")
  from_files = parallel.local_pairs(source=str(tmp_path / "train.en"), target=str(tmp_path / "train.fr"),
                                    data_dir=data_dir)
  from_tsv = parallel.local_pairs(tsv=str(tmp_path / "train.tsv"), data_dir=data_dir)
  assert from_files["train"] == pairs == from_tsv["train"]
  splits = parallel.split_by_fraction(from_files, valid_fraction=0.1, test_fraction=0.05, seed=0)
  assert (len(splits["valid"]), len(splits["test"]), len(splits["train"])) == (20, 10, 170)
  (tmp_path / "short.fr").write_text("un\n", encoding="utf-8")
  with pytest.raises(ValueError, match="line-aligned"):
    parallel.local_pairs(source=str(tmp_path / "train.en"), target=str(tmp_path / "short.fr"), data_dir=data_dir)
  with pytest.raises(ValueError, match="either a TSV"):
    parallel.local_pairs(source=str(tmp_path / "train.en"), tsv=str(tmp_path / "train.tsv"))


@pytest.mark.parametrize("name,source_lang,target_lang", [("ted_hrlr_translate/pt_to_en", "pt", "en"),
                                                          ("wmt14_translate/de-en", "de", "en")])
def test_catalog_loaders_with_mock_data(name, source_lang, target_lang, tmp_path):
  with tfds.testing.mock_data(num_examples=6):
    splits = parallel.catalog_pairs(name, source_lang, target_lang, data_dir=str(tmp_path), download=False)
  assert set(splits) == set(parallel.SPLITS)
  for pairs in splits.values():
    assert len(pairs) == 6
    assert all(isinstance(s, str) and isinstance(t, str) for s, t in pairs)


def test_tatoeba_builder_reads_the_zip(tmp_path):
  path = fetched_file("tatoeba_fra_eng")
  pairs = parallel.tatoeba_pairs(path, "fr", data_dir=str(tmp_path))
  assert len(pairs) == 142787
  assert pairs[0] == ("Va !", "Go.")
  short = parallel.filter_by_length(pairs, 15)
  splits = parallel.split_by_source(short, 500, 2000, seed=0)
  assert len(splits["test"]) == 2000 and not {s for s, _ in splits["test"]} & {s for s, _ in splits["train"]}


# ----------------------------------------------------------------------------- model


def _model(attention="bahdanau", **options):
  base = dict(source_vocab=13, target_vocab=11, cell="gru", embed_size=6, encoder_size=5, decoder_size=10,
              attention_size=7, output_size=9, attention=attention)
  return Seq2Seq(**{**base, **options})


def _batch(seed=0, batch=4, source_len=7, target_len=6):
  rng = np.random.default_rng(seed)
  source_lengths = np.array([7, 2, 5, 1])[:batch]
  target_lengths = np.array([6, 3, 1, 4])[:batch]
  sources = [rng.integers(4, 13, n) for n in source_lengths]
  targets = [rng.integers(4, 11, n - 1) for n in target_lengths]
  out = parallel_batches.pad_batch(sources, targets, pad_to_multiple=1)
  assert out["source"].shape == (batch, source_len) and out["target_in"].shape == (batch, target_len)
  return jax.tree.map(jnp.asarray, out)


def test_reverse_within_lengths():
  x = jnp.array([[1, 2, 3, 0], [4, 5, 0, 0]])
  np.testing.assert_array_equal(reverse_within_lengths(x, jnp.array([3, 2])), [[3, 2, 1, 0], [5, 4, 0, 0]])


MODEL_VARIANTS = [dict(attention=a) for a in ATTENTIONS] + [
    dict(attention="luong_general", input_feeding=False),
    dict(attention="bahdanau", cell="lstm", encoder_layers=2, decoder_layers=2),
    dict(attention="none", reverse_source=True, bidirectional=False, decoder_size=5)]


@pytest.mark.parametrize("options", MODEL_VARIANTS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_teacher_forcing_equals_stepwise_decoding(options):
  """The scanned teacher-forced logits are the log-probs that `step` (used by beam search) gives."""
  model = _model(**options)
  params = model.init(jax.random.PRNGKey(1))
  batch = _batch()
  logits, attn = jax.jit(model.teacher_forced)(params, batch)
  state = jax.jit(model.encode)(params, batch["source"], batch["source_lengths"])
  step = jax.jit(model.step)
  for t in range(batch["target_in"].shape[1]):
    state, log_probs, weights = step(params, state, batch["target_in"][:, t])
    np.testing.assert_allclose(log_probs, jax.nn.log_softmax(logits[:, t]), atol=1e-5)
    np.testing.assert_allclose(weights, attn[:, t], atol=1e-6)
  if options["attention"] != "none":
    mask = np.arange(7)[None, :] < np.asarray(batch["source_lengths"])[:, None]
    np.testing.assert_allclose(np.sum(attn, axis=-1), 1.0, rtol=1e-5)
    assert np.all(np.asarray(attn)[np.broadcast_to(~mask[:, None, :], attn.shape)] == 0.0)


@pytest.mark.parametrize("options", [MODEL_VARIANTS[2], MODEL_VARIANTS[-2], MODEL_VARIANTS[-1]],
                         ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_padded_and_unpadded_sources_translate_the_same(options):
  """Each sentence decoded alone with no padding equals its row in a batch padded to a larger width."""
  model = _model(**options)
  params = jax.tree.map(lambda x: 3.0 * x, model.init(jax.random.PRNGKey(2)))  # peaked, decisive outputs
  batch = jax.tree.map(lambda x: x[:3], _batch(seed=3))
  wide = jnp.pad(batch["source"], ((0, 0), (0, 5)), constant_values=7)  # padding content must not matter
  kwargs = dict(beam_size=3, alpha=0.6, max_ratio=1.0, max_offset=3, max_length=12)
  together = experiment.decode_batch(model, params, wide, batch["source_lengths"], **kwargs)
  for b, n in enumerate(np.asarray(batch["source_lengths"])):
    alone = experiment.decode_batch(model, params, batch["source"][b:b + 1, :n], batch["source_lengths"][b:b + 1],
                                    **kwargs)
    np.testing.assert_array_equal(alone.tokens[0], together.tokens[b])
    np.testing.assert_allclose(alone.scores[0], together.scores[b], rtol=1e-5)
    np.testing.assert_allclose(alone.attention[0], together.attention[b, :, :n], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(together.attention[b, :, n:], 0.0)


def test_loss_masks_padding_and_smooths_labels():
  model = _model()
  params = model.init(jax.random.PRNGKey(4))
  batch = _batch(seed=5)
  loss_fn = jax.jit(model.loss, static_argnames=("label_smoothing",))
  loss, metrics = loss_fn(params, batch)
  scribbled = dict(batch, target_out=jnp.where(jnp.arange(6)[None, :] < batch["target_lengths"][:, None],
                                               batch["target_out"], 9))
  np.testing.assert_allclose(loss_fn(params, scribbled)[0], loss, rtol=1e-6)
  logits, _ = jax.jit(model.teacher_forced)(params, batch)
  log_probs = np.asarray(jax.nn.log_softmax(logits))
  eps, vocab, total, count = 0.1, 11, 0.0, 0
  nll = 0.0
  for b, n in enumerate(np.asarray(batch["target_lengths"])):
    for t in range(n):
      y = int(batch["target_out"][b, t])
      nll -= log_probs[b, t, y]
      total -= (1 - eps) * log_probs[b, t, y] + eps / vocab * log_probs[b, t].sum()
      count += 1
  np.testing.assert_allclose(loss, nll / count, rtol=1e-5)
  assert set(metrics) == {"token_accuracy"}  # the loss is the NLL: no second name for it
  smoothed, smoothed_metrics = loss_fn(params, batch, label_smoothing=eps)
  np.testing.assert_allclose(smoothed, total / count, rtol=1e-5)
  np.testing.assert_allclose(smoothed_metrics["nll"], nll / count, rtol=1e-5)


def test_luong_dot_needs_matching_sizes():
  with pytest.raises(ValueError, match="luong_dot"):
    _model("luong_dot", decoder_size=8)
  with pytest.raises(ValueError, match="attention must be one of"):
    _model("cosine")


# ----------------------------------------------------------------------------- BLEU


def _reference_bleu(hyps, refs, max_n=4):
  """BLEU (Papineni et al. 2002) on whitespace tokens, written out: clipped n-gram precisions, brevity penalty."""
  matches, totals, hyp_len, ref_len = [0] * max_n, [0] * max_n, 0, 0
  for h, r in zip(hyps, refs):
    h, r = h.split(), r.split()
    hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
    for n in range(1, max_n + 1):
      hc = collections.Counter(tuple(h[i:i + n]) for i in range(len(h) - n + 1))
      rc = collections.Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1))
      matches[n - 1] += sum(min(c, rc[g]) for g, c in hc.items())
      totals[n - 1] += max(len(h) - n + 1, 0)
  log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
  brevity = min(0.0, 1.0 - ref_len / hyp_len)
  return 100.0 * math.exp(brevity + log_precision)


def test_bleu_matches_sacrebleu_and_the_formula():
  hyps = ["the quick brown fox jumps over the lazy dog today", "a cat sat on the red mat in the sun"]
  refs = ["the quick brown fox jumped over the lazy dog today", "the cat sat on the mat in the hot sun"]
  ours = experiment.bleu(hyps, refs)
  assert ours == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=1e-9)
  assert ours == pytest.approx(_reference_bleu(hyps, refs), rel=1e-9)
  assert 0.0 < ours < 100.0
  buckets = experiment.bleu_by_length(list(zip(refs, refs)), hyps, edges=(10, 20))
  assert [b["count"] for b in buckets] == [2]
  assert buckets[0]["bleu"] == pytest.approx(ours)


def test_bleu_is_computed_on_detokenised_output():
  """Tokenised hypotheses ("c ' est") would lose BLEU; decode() restores the text sacrebleu expects."""
  refs = ["Qu'est-ce que c'est ?", "Je n'ai pas vingt-trois ans."]
  tok = tokenizers.WordTokenizer.train(refs)
  hyps = [tok.decode(tok.encode(r)) for r in refs]
  assert experiment.bleu(hyps, refs) == pytest.approx(100.0)
  assert experiment.bleu([" ".join(tok.tokens(r)) for r in refs], refs) < 100.0


# ----------------------------------------------------------------------------- learning and the command line


def _small_numbers_config(**overrides):
  c = numbers.get_config()
  c.num_steps = 500
  c.log_every = 100
  c.eval_every = 500
  c.checkpoint_every = 500
  c.data.num_train = 3000
  c.data.num_valid = 100
  c.data.num_test = 300
  c.data.max_digits = 4
  c.data.batch_size = 32
  c.model.embed_size = 32
  c.model.encoder_size = 32
  c.model.decoder_size = 64
  c.model.attention_size = 32
  c.model.output_size = 64
  c.optimizer.learning_rate = 5e-3
  c.decode.beam_size = 3
  c.eval.valid_examples = 100
  c.eval.heatmaps = 1
  for key, value in overrides.items():
    c[key] = value
  return c


@pytest.mark.slow
def test_learns_the_number_task_and_translates_from_the_command_line(tmp_path):
  """A small attention model learns English -> French numbers to high held-out exact match; the
  checkpoint then translates from stdin through `main --mode=translate`."""
  workdir = str(tmp_path / "run")
  results = experiment.run(_small_numbers_config(), workdir)
  assert results["greedy"]["exact_match"] >= 0.9, results["greedy"]
  assert results["beam"]["exact_match"] >= results["greedy"]["exact_match"] - 0.01
  assert results["greedy"]["bleu"] > 90
  assert os.path.exists(os.path.join(workdir, "attention_0.png"))
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.translation.main", f"--workdir={workdir}", "--mode=translate",
       "--config.decode.beam_size=1"],
      input="seven hundred and twelve\n\nninety-one\n", capture_output=True, text=True, cwd=REPO, timeout=300,
      env={**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.splitlines() == ["sept cent douze", "", "quatre-vingt-onze"]  # a blank line stays blank
  # --mode=eval re-scores the checkpoint into its own file; the training run's results.json stays as written
  with open(os.path.join(workdir, "results.json")) as f:
    trained = f.read()
  evaluated = experiment.evaluate_checkpoint(_small_numbers_config(), workdir)
  assert evaluated["greedy"]["bleu"] == pytest.approx(results["greedy"]["bleu"])
  with open(os.path.join(workdir, "results_numbers.json")) as f:
    assert json.load(f)["greedy"]["exact_match"] == pytest.approx(results["greedy"]["exact_match"])
  with open(os.path.join(workdir, "results.json")) as f:
    assert f.read() == trained and "history" in json.loads(trained)


def test_users_files_train_and_evaluate(tmp_path):
  """`--config.data.source/target` on a temp corpus: split by fraction, vocabularies saved, test figures."""
  pairs = parallel.number_pairs(seed=7, num_train=400, num_valid=1, num_test=1, max_digits=3)["train"]
  (tmp_path / "corpus.src").write_text("\n".join(s for s, _ in pairs) + "\n", encoding="utf-8")
  (tmp_path / "corpus.tgt").write_text("\n".join(t for _, t in pairs) + "\n", encoding="utf-8")
  c = _small_numbers_config(num_steps=20, eval_every=20, checkpoint_every=20)
  c.data.source, c.data.target = str(tmp_path / "corpus.src"), str(tmp_path / "corpus.tgt")
  c.data.tfds_dir = str(tmp_path / "tfds")
  c.data.tokenizer, c.data.source_vocab_size, c.data.target_vocab_size = "sentencepiece", 60, 60
  c.decode.beam_size = 1
  workdir = str(tmp_path / "run")
  results = experiment.run(c, workdir)
  assert results["dataset"] == "files" and results["greedy"]["pairs"] == 20  # 5% of 400 held out for test
  assert os.path.exists(os.path.join(workdir, "source.spm.model"))
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["data"]["source"] == c.data.source
  model, params, source_tok, target_tok, _ = experiment.restore(workdir)
  out = experiment.translate(model, params, source_tok, target_tok, ["one hundred", "two"], c.decode, pad_to=0)
  assert [t.source for t in out] == ["one hundred", "two"] and all(isinstance(t.text, str) for t in out)
  assert out[0].attention.shape == (len(out[0].output_tokens), len(out[0].source_tokens))
  c.data.tokenizer = "word"
  with pytest.raises(ValueError, match=r"vocabularies \['source.spm.model', 'target.spm.model'\] of another tokenizer"):
    experiment.build(c, workdir)
  c.data.tokenizer, c.data.target_vocab_size = "sentencepiece", 80
  with pytest.raises(train.ConfigError, match="vocabularies were made with config.data.target_vocab_size=60, not 80"):
    experiment.build(c, workdir)


def test_a_refused_run_writes_no_vocabulary(tmp_path):
  workdir = tmp_path / "run"
  with workdir_lib.locked(str(workdir)):  # another run holds it
    with pytest.raises(train.WorkdirLockedError):
      experiment.run(_small_numbers_config(num_steps=2), str(workdir))
  assert os.listdir(workdir) == ["lock"]


def test_config_errors_name_the_field():
  for field, value, message in [("model.cell", "nope", "config.model.cell"),
                                ("model.attention", "cosine", "config.model.attention"),
                                ("data.tokenizer", "bpe", "config.data.tokenizer"),
                                ("decode.beam_size", 0, "config.decode.beam_size"),
                                ("decode.max_length", 0, "config.decode.max_length must be >= 1"),
                                ("data.max_tokens", -1, "config.data.max_tokens must be >= 0"),
                                ("data.source_vocab_size", 3, "config.data.source_vocab_size must exceed the 4")]:
    c = numbers.get_config()
    section, key = field.split(".")
    c[section][key] = value
    with pytest.raises(ValueError, match=message):
      experiment.validate(c)
  c = numbers.get_config()
  c.data.name = "europarl"
  with pytest.raises(ValueError, match="config.data.name"):
    data.dataset_name(c)


def test_translating_many_sentences_logs_progress_with_an_eta(monkeypatch, caplog):
  monkeypatch.setattr(progress, "EVERY_S", 0.0)  # a line per batch
  model = _model()
  params = model.init(jax.random.PRNGKey(0))
  source_tok = tokenizers.WordTokenizer.train(["a b c d"])
  target_tok = tokenizers.WordTokenizer.train(["e f g h i j k l m n o"])  # covers the model's 11 output ids
  with caplog.at_level(logging.INFO, logger="absl"):
    experiment.translate(model, params, source_tok, target_tok, ["a b", "c", "d a"], numbers.get_config().decode,
                         beam_size=1, batch_size=2)
  lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("translating sentences (beam 1): ")]
  assert [line.split(",")[0] for line in lines] == ["translating sentences (beam 1): 2/3",
                                                    "translating sentences (beam 1): 3/3"]
  assert all("ETA" in line for line in lines)
