"""Language modeling: TBPTT continuity, exact resume after SIGKILL, loaders, config errors, overfitting, sampling."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments.language_modeling import lm
from experiments.language_modeling.configs import char_default
from experiments.language_modeling.model import LanguageModel
from rnn_jax import train
from rnn_jax.data import text

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHORT_TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40


def _tiny_config(path):
  c = char_default.get_config()
  c.data.path = str(path)
  c.data.batch_size = 4
  c.data.eval_batch_size = 2
  c.data.bptt = 16
  c.model.hidden_size = 32
  c.model.embed_size = 16
  c.log_every = 1
  c.eval_every = 1000
  c.checkpoint_every = 10
  c.num_steps = 40
  c.sample.length = 20
  return c


def test_two_half_windows_with_carried_state_equal_one_window():
  model = LanguageModel(vocab_size=11, hidden_size=8, embed_size=6, num_layers=2, cell="gru")
  params = model.init(jax.random.PRNGKey(0))
  tokens = jax.random.randint(jax.random.PRNGKey(1), (3, 10), 0, 11)
  full, carries_full = model.apply(params, model.initial_carries(params, 3), tokens)
  first, carries = model.apply(params, model.initial_carries(params, 3), tokens[:, :4])
  second, carries = model.apply(params, carries, tokens[:, 4:])
  np.testing.assert_allclose(full, jnp.concatenate([first, second], axis=1), atol=1e-5)
  for a, b in zip(jax.tree.leaves(carries_full), jax.tree.leaves(carries)):
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_loss_resets_carries_at_epoch_start_and_stops_their_gradient():
  model = LanguageModel(vocab_size=7, hidden_size=8, embed_size=4, num_layers=1)
  params = model.init(jax.random.PRNGKey(0))
  tokens = jax.random.randint(jax.random.PRNGKey(1), (2, 5), 0, 7)
  batch = {"inputs": tokens, "targets": tokens, "reset": np.array([True, True])}
  noisy = jax.tree.map(lambda c: c + 3.0, model.initial_carries(params, 2))
  loss_reset, _ = model.loss_fn(params, noisy, batch, None, False)
  loss_zero, _ = model.loss_fn(params, model.initial_carries(params, 2), batch, None, False)
  assert float(loss_reset) == float(loss_zero)
  batch["reset"] = np.array([False, False])
  grad_carry = jax.grad(lambda c: model.loss_fn(params, c, batch, None, False)[0])(noisy)
  assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grad_carry))


def test_random_resets_restart_streams_at_the_configured_rate_reproducibly():
  """Every stream restarts at an epoch's first window; elsewhere each does with the configured probability,
  drawn from `(seed, step)` alone (a resumed run draws the same); probability 0 leaves epoch starts only."""
  resets = np.stack([lm.stream_resets(step, 50, 64, 0.05, seed=3) for step in range(1000)])
  assert resets[::50].all()
  others = np.delete(resets, np.s_[::50], axis=0)
  assert abs(others.mean() - 0.05) < 0.005 and others.any(axis=0).all()
  np.testing.assert_array_equal(lm.stream_resets(777, 50, 64, 0.05, seed=3), resets[777])
  assert not np.array_equal(np.stack([lm.stream_resets(step, 50, 64, 0.05, seed=4) for step in range(1000)]), resets)
  assert not np.delete(np.stack([lm.stream_resets(s, 50, 64, 0.0, 3) for s in range(200)]), np.s_[::50], 0).any()


def test_cell_clip_lets_a_stream_recover_from_a_runaway_cell_state():
  """One LSTM unit counts a's up and b's down (forget gate open) and predicts the next token from the count's
  sign. After 300 a's an unclipped cell state of 300 mispredicts the 100 b's that follow; clipped to 3 it
  recovers within a few b's. The carries stay inside the clip across the evaluation's windows."""
  stream = np.array([[1] * 300 + [2] * 101])
  losses = {}
  for clip in (0.0, 3.0):
    model = LanguageModel(vocab_size=3, hidden_size=1, embed_size=2, num_layers=1, cell_clip=clip)
    params = model.init(jax.random.PRNGKey(0))
    params["embed"] = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # a, b one-hot
    params["rnn"][0].update(w_x=jnp.array([[20.0, 0.0, 20.0, 0.0], [20.0, 0.0, -20.0, 0.0]]),  # i = 1; g = +-1
                            w_h=jnp.zeros((1, 4)), b=jnp.array([0.0, 20.0, 0.0, 20.0]))  # f = o = 1
    params["out_w"], params["out_b"] = jnp.array([[0.0, 6.0, -6.0]]), jnp.zeros((3,))
    losses[clip] = lm.evaluate_streams(model, train.make_eval_step(model.loss_fn), params, stream, 50)[0]
    _, carries = model.apply(params, model.initial_carries(params, 1), jnp.asarray(stream))
    np.testing.assert_allclose(float(carries[0].c[0, 0]), -3.0 if clip else 300.0 - 101.0, rtol=1e-4)
  assert losses[0.0] > 1.0 and losses[3.0] < 0.2 * losses[0.0], losses


def test_embeddings_start_at_the_configured_scale():
  config = char_default.get_config()
  config.model.embed_size = 64
  for std in (1.0, 0.1):
    config.model.embed_init_std = std
    embed = lm.make_model(config, vocab_size=300).init(jax.random.PRNGKey(0))["embed"]
    assert abs(float(jnp.std(embed)) / std - 1) < 0.02, std  # 19,200 draws: the sample std is within 0.5 %


def test_forget_gates_start_at_the_configured_bias():
  config = char_default.get_config()
  config.model.hidden_size = 16
  for cell, bias in (("lstm", 0.0), ("lstm", 1.0), ("lstmp", 0.0)):
    config.model.cell, config.model.forget_bias = cell, bias
    config.model.proj_size = 8 if cell == "lstmp" else 0
    for layer in lm.make_model(config, vocab_size=30).init(jax.random.PRNGKey(0))["rnn"]:
      np.testing.assert_array_equal(layer["b"][16:32], bias)  # gates i, f, g, o
      np.testing.assert_array_equal(np.delete(np.asarray(layer["b"]), np.s_[16:32]), 0.0)


def test_tbptt_batches_continue_the_streams():
  ids = np.arange(100)
  streams = text.batchify(ids, 4)
  assert streams.shape == (4, 25)
  x0, y0 = text.window(streams, 0, 6)
  x1, _ = text.window(streams, 1, 6)
  np.testing.assert_array_equal(y0, x0 + 1)
  np.testing.assert_array_equal(x1[:, 0], x0[:, -1] + 1)  # window 1 continues where window 0 stopped
  assert text.num_windows(streams, 6) == 4


def test_per_stream_losses_equal_each_stream_evaluated_alone():
  model = LanguageModel(vocab_size=9, hidden_size=8, embed_size=4, num_layers=2)
  params = model.init(jax.random.PRNGKey(0))
  ids = np.array(jax.random.randint(jax.random.PRNGKey(1), (3 * 40,), 0, 9))
  ids[80:120] = 4  # the third stream is one repeated token: it scores unlike the others
  streams = text.batchify(ids, 3)
  eval_step = train.make_eval_step(model.loss_fn)
  nll_B = lm.evaluate_streams(model, eval_step, params, streams, 8)
  alone = [lm.evaluate_streams(model, eval_step, params, streams[b:b + 1], 8)[0] for b in range(3)]
  np.testing.assert_allclose(nll_B, alone, rtol=1e-5)
  # The split's loss is the mean over its tokens, computed here directly from the model's logits.
  logits, _ = model.apply(params, model.initial_carries(params, 3), jnp.asarray(streams[:, :-1]))
  direct = -jax.nn.log_softmax(logits)[np.arange(3)[:, None], np.arange(39)[None], streams[:, 1:]]
  np.testing.assert_allclose(nll_B.mean(), float(direct[:, :32].mean()), rtol=1e-5)  # 4 windows of 8
  line = lm.stream_summary("valid", nll_B, streams)
  worst = int(np.argmax(nll_B))
  assert f"stream {worst}, starting at token {worst * 40}" in line and f"max {nll_B.max():.3f}" in line


@pytest.mark.parametrize("matmul_dtype", ["float32", "bfloat16"])
def test_tiny_model_overfits_a_short_text(tmp_path, matmul_dtype, capsys):
  corpus = tmp_path / "short.txt"
  corpus.write_text(SHORT_TEXT)
  config = _tiny_config(corpus)
  config.model.matmul_dtype = matmul_dtype  # bfloat16: mixed precision, params and optimizer state in float32
  config.num_steps = 150
  config.optimizer.learning_rate = 1e-2
  state = lm.run(config, str(tmp_path / "run"))
  assert {leaf.dtype for leaf in jax.tree.leaves(state.params)} == {jnp.dtype("float32")}
  losses = [m["loss"] for m in train.read_metrics(str(tmp_path / "run")) if "loss" in m]
  assert losses[0] > 2.0 and np.mean(losses[-10:]) < 0.3, (losses[0], losses[-10:])
  # --mode=sample and --mode=eval: the saved model, params and vocabulary, re-read (the flags' model ignored)
  config.model.hidden_size = 7
  model, vocab, params, saved = lm.restore(str(tmp_path / "run"))
  assert saved.model.hidden_size == 32
  np.testing.assert_array_equal(params["out_w"], state.params["out_w"])
  sample = lm.sample_text(model, vocab, params, "the quick", 30, 0.1, seed=0)
  assert sample.startswith("the quick brown fox"), sample
  assert sample == lm.sample_text(model, vocab, params, "the quick", 30, 0.1, seed=0)
  greedy = lm.sample_text(model, vocab, params, "the quick", 30, 0.0, seed=1)
  assert greedy == lm.sample_text(model, vocab, params, "the quick", 30, 0.0, seed=2)  # temperature 0: argmax
  assert greedy.startswith("the quick brown fox"), greedy
  evaluated = lm.evaluate_checkpoint(config, str(tmp_path / "run"))
  assert evaluated["valid_max_stream_loss"] >= evaluated["valid_loss"]
  assert "valid: 2 streams, nats/token median" in capsys.readouterr().out  # --mode=eval prints the spread
  assert evaluated["valid_loss"] < 0.5 and abs(evaluated["valid_bpc"] - evaluated["valid_loss"] / np.log(2)) < 1e-9


def _files(directory) -> dict:
  """`{relative path: bytes}` of every file under `directory`."""
  return {str(path.relative_to(directory)): path.read_bytes() for path in directory.rglob("*") if path.is_file()}


def _launch(workdir, corpus, *extra):
  return [sys.executable, "-m", "experiments.language_modeling.main", f"--workdir={workdir}",
          f"--config.data.path={corpus}", "--config.data.batch_size=4", "--config.data.bptt=16",
          "--config.model.hidden_size=32", "--config.model.embed_size=16", "--config.model.dropout=0.1",
          "--config.num_steps=40", "--config.log_every=1",
          "--config.checkpoint_every=7", "--config.eval_every=1000", "--config.sample.length=10",
          "--config.data.reset_probability=0.2", *extra]  # random resets: drawn the same after a restart


def test_sigkill_and_restart_continues_the_same_loss_curve(tmp_path):
  corpus = tmp_path / "corpus.txt"
  corpus.write_text(text.stdlib_docstring_text()[:30_000])
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  straight = subprocess.run(_launch(tmp_path / "a", corpus), cwd=REPO, env=env, capture_output=True, text=True)
  assert straight.returncode == 0, straight.stderr[-3000:]
  assert {"config.json", "metrics.jsonl", "tensorboard", "results.json"} <= set(os.listdir(tmp_path / "a"))
  # Rerunning the finished run says so and prints its results, computing and writing nothing.
  before = _files(tmp_path / "a")
  again = subprocess.run(_launch(tmp_path / "a", corpus), cwd=REPO, env=env, capture_output=True, text=True)
  assert again.returncode == 0, again.stderr[-3000:]
  assert f"{tmp_path / 'a'} holds a finished run: all 40 steps trained" in again.stdout, again.stdout
  assert '"valid_loss": ' in again.stdout and "Training steps" not in again.stderr
  assert _files(tmp_path / "a") == before

  proc = subprocess.Popen(_launch(tmp_path / "b", corpus), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  metrics_path = tmp_path / "b" / "metrics.jsonl"
  deadline = time.time() + 240
  while time.time() < deadline:  # kill once past a checkpoint, between two checkpoints
    if metrics_path.exists() and len(metrics_path.read_text().splitlines()) >= 17:
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert len(metrics_path.read_text().splitlines()) < 40, "the run finished before it could be killed"
  resumed = subprocess.run(_launch(tmp_path / "b", corpus), cwd=REPO, env=env, capture_output=True, text=True)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "Restored checkpoint step" in resumed.stderr

  curve_a = [(m["step"], m["loss"]) for m in train.read_metrics(str(tmp_path / "a")) if "loss" in m]
  curve_b = [(m["step"], m["loss"]) for m in train.read_metrics(str(tmp_path / "b")) if "loss" in m]
  assert [s for s, _ in curve_a] == list(range(1, 41)) == [s for s, _ in curve_b]
  np.testing.assert_allclose([l for _, l in curve_b], [l for _, l in curve_a], rtol=1e-6)

  sample = subprocess.run(_launch(tmp_path / "b", corpus, "--mode=sample", "--config.sample.prime=The"),
                          cwd=REPO, env=env, capture_output=True, text=True)
  assert sample.returncode == 0, sample.stderr[-2000:]
  assert sample.stdout.startswith("The") and len(sample.stdout.strip()) >= 10


@pytest.mark.parametrize("field,value,message", [
    ("model.cell", "lstn", "config.model.cell: unknown cell 'lstn'"),
    ("model.matmul_dtype", "bf17", "config.model: matmul_dtype: unknown dtype 'bf17'"),
    ("data.level", "byte", "config.data.level must be 'char' or 'word'"),
    ("model.dropout", 1.5, "config.model.dropout must be in"),
    ("data.bptt", 0, "config.data.bptt must be > 0"),
    ("num_steps", -1, "config.num_steps must be >= 0"),
    ("eval_splits", ("validation",), r"config.eval_splits must name some of \('train', 'valid', 'test'\)"),
    ("data.fractions", (1.0, 0.0, 0.0), "config.data.fractions must be three positive fractions"),
    ("sample.length", -5, "config.sample.length must be >= 0"),
    ("data.reset_probability", 1.0, r"config.data.reset_probability must be in \[0, 1\)"),
    ("model.cell_clip", -1.0, "config.model.cell_clip must be >= 0"),
    ("sample.temperature", -0.5, "config.sample.temperature must be >= 0"),
])
def test_invalid_config_values_are_named(field, value, message):
  config = char_default.get_config()
  *sections, name = field.split(".")
  (config[sections[0]] if sections else config)[name] = value
  with pytest.raises(ValueError, match=message):
    lm.validate(config)
  config = char_default.get_config()
  config.model.cell, config.model.cell_clip = "gru", 3.0
  with pytest.raises(ValueError, match="config.model.cell_clip clips an LSTM's cell state"):
    lm.validate(config)
  config = char_default.get_config()
  config.model.cell, config.model.forget_bias = "gru", 0.0
  with pytest.raises(ValueError, match="config.model.forget_bias starts an LSTM's forget gate"):
    lm.validate(config)
  config = char_default.get_config()
  config.model.tied, config.model.embed_size = True, 100
  with pytest.raises(ValueError, match="tied needs embed_size == hidden_size"):
    lm.validate(config)


def test_corpus_too_short_for_the_streams_or_a_workdir_of_another_level_is_named(tmp_path):
  corpus = tmp_path / "short.txt"
  corpus.write_text(SHORT_TEXT)
  config = _tiny_config(corpus)
  config.data.bptt = 100_000
  with pytest.raises(ValueError, match=r"training split of \d+ tokens is too short for 4 streams.*config.data.bptt"):
    lm.build(config, str(tmp_path / "run"))
  config = _tiny_config(corpus)
  config.data.eval_batch_size = 10_000
  with pytest.raises(ValueError, match="the valid split .config.data.eval_batch_size streams. of .* too short"):
    lm.build(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()  # refused runs leave no vocabulary behind
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "vocab.json").write_text(text.Vocabulary.build(SHORT_TEXT, "char").to_json())
  config = _tiny_config(corpus)
  config.data.level = "word"  # the workdir holds a char-level run's vocabulary
  with pytest.raises(ValueError, match="vocab.json is a char-level vocabulary but config.data.level is 'word'"):
    lm.build(config, str(tmp_path / "run"))


def test_users_own_corpus_directory_and_word_level(tmp_path):
  for split, body in [("train", "a b c\nb c a\n" * 5), ("valid", "a c b\n"), ("test", "c a b d\n")]:
    (tmp_path / f"my.{split}.txt").write_text(body)
  splits = text.load_text_splits(str(tmp_path), data_dir=str(tmp_path / "tfds"))
  assert splits["test"] == "c a b d\n"
  vocab = text.Vocabulary.build(splits["train"], "word")
  assert set(vocab.tokens) == {"<unk>", "<eos>", "a", "b", "c"}
  ids = vocab.encode(splits["test"])
  assert vocab.decode(ids).split() == ["c", "a", "b", "<unk>"]


def test_single_file_splits_in_order_through_tfds(tmp_path):
  corpus = tmp_path / "c.txt"
  body = "".join(chr(ord("a") + i % 26) for i in range(200_000))  # spans several array_record chunks
  corpus.write_text(body)
  splits = text.load_text_splits(str(corpus), data_dir=str(tmp_path / "tfds"))
  assert splits["train"] + splits["valid"] + splits["test"] == body
  assert len(splits["train"]) == 180_000 and len(splits["valid"]) == 10_000


def test_word_vocabulary_of_a_corpus_with_unk_keeps_max_size_tokens():
  corpus = "a a a b b <unk> <unk> <unk> <unk> c\n"
  assert text.Vocabulary.build(corpus, "word", max_size=4).tokens == ("<unk>", "a", "b", "<eos>")
  assert text.Vocabulary.build(corpus, "word").tokens == ("<unk>", "a", "b", "<eos>", "c")


@pytest.mark.parametrize("name", ["tiny_shakespeare", "lm1b"])
def test_catalog_loaders_with_mock_data(name, tmp_path):
  with tfds.testing.mock_data(num_examples=3):
    splits = text.load_text_splits(f"tfds:{name}", data_dir=str(tmp_path))
  assert set(splits) == {"train", "valid", "test"}
  assert all(isinstance(v, str) and v for v in splits.values())


def test_lm1b_validation_is_held_out_of_train():
  # mock_data ignores split slicing, so resolve the slices as TFDS would for lm1b's 30,301,028 sentences
  infos = {"train": tfds.core.SplitInfo(name="train", shard_lengths=[30_301_028], num_bytes=0)}
  def rows(spec):
    return [(a.splitname, a.from_, a.to) for a in tfds.core.ReadInstruction.from_spec(spec).to_absolute(infos)]
  ranges = {ours: rows(theirs) for ours, theirs in text.CATALOG["lm1b"].items() if ours != "test"}
  assert ranges == {"train": [("train", None, 29_998_018)], "valid": [("train", 29_998_018, None)]}
  with pytest.raises(ValueError, match="unsupported TFDS text dataset 'wiki'"):
    text.load_text_splits("tfds:wiki")


def test_shakespeare_splits_when_present(tmp_path):
  from tests.conftest import fetched_file
  path = fetched_file("tiny_shakespeare")
  splits = text.load_text_splits(path, data_dir=str(tmp_path))
  assert abs(len(splits["train"]) / sum(map(len, splits.values())) - 0.9) < 1e-4
  assert splits["train"].startswith("First Citizen:")
