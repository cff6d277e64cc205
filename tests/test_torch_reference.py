"""The PyTorch reference LM and the side-by-side comparison (run only where the `torch` extra is installed)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch", reason="the PyTorch reference needs the torch extra: pip install -e .[torch]")

from experiments.language_modeling import lm, torch_reference  # pylint: disable=wrong-import-position
from experiments.language_modeling.configs import torch_comparison  # pylint: disable=wrong-import-position
from rnn_jax.data import text  # pylint: disable=wrong-import-position

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"data.batch_size": 4, "data.bptt": 16, "data.eval_batch_size": 2, "model.hidden_size": 32,
        "model.embed_size": 8, "num_steps": 60, "eval_every": 20, "optimizer.learning_rate": 3e-2}


def _corpus(tmp_path):
  corpus = tmp_path / "corpus.txt"
  corpus.write_text("the quick brown fox jumps over the lazy dog.\n" * 60)
  return corpus


def _tiny_config(corpus):
  config = torch_comparison.get_config()
  config.data.path = str(corpus)
  for field, value in TINY.items():
    *section, name = field.split(".")
    (config[section[0]] if section else config)[name] = value
  return config


def test_reference_reads_the_same_characters_and_learns(tmp_path):
  config = _tiny_config(_corpus(tmp_path))
  vocab, ids, _ = lm.load_corpus(config, str(tmp_path / "run"))
  vocab_size, streams, valid = torch_reference.corpus_streams(config)
  assert vocab_size == len(vocab)
  np.testing.assert_array_equal(streams, text.batchify(ids["train"], config.data.batch_size))
  np.testing.assert_array_equal(valid, text.batchify(ids["valid"], config.data.eval_batch_size))
  records = torch_reference.train(config, str(tmp_path / "torch.jsonl"), minutes=0)
  assert [r["step"] for r in records] == [20, 40, 60]
  assert records[0]["valid_loss"] < np.log(vocab_size) and records[-1]["valid_loss"] < 0.3, records  # memorised


def test_side_by_side_plots_both_curves_within_the_budget(tmp_path):
  corpus = _corpus(tmp_path)
  overrides = [f"--config.{field}={value}" for field, value in TINY.items()]
  schedule = "pinned" if len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset") else "sequential"
  out = tmp_path / "out"
  done = subprocess.run([sys.executable, "-m", "experiments.language_modeling.side_by_side", "--minutes=5",
                         f"--out={out}", f"--schedule={schedule}", f"--config.data.path={corpus}", *overrides,
                         "--rnn_jax_config.model.embed_size=6"],
                        cwd=REPO, capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stderr[-3000:]
  assert (out / "side_by_side.png").stat().st_size > 1000
  saved = json.loads((out / "rnn_jax" / "config.json").read_text())
  assert saved["model"]["embed_size"] == 6 and saved["model"]["hidden_size"] == TINY["model.hidden_size"]
  # Another rnn_jax recipe against the same reference run: into a copy of the reference's half only.
  again = [sys.executable, "-m", "experiments.language_modeling.side_by_side", "--minutes=5", "--programs=rnn_jax",
           f"--config.data.path={corpus}", *overrides]
  refused = subprocess.run([*again, f"--out={out}"], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert refused.returncode != 0 and refused.stderr.strip().splitlines() == [
      f"{out / 'rnn_jax'} holds a run already: choose another --out, or leave rnn_jax out of --programs to plot "
      "against it"]
  second = tmp_path / "second"
  second.mkdir()
  shutil.copytree(out / "torch", second / "torch")
  shutil.copy(out / "torch.started", second / "torch.started")
  done = subprocess.run([*again, f"--out={second}"], cwd=REPO, capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stderr[-3000:]
  assert not (second / "torch.log").exists()  # the reference did not run again ...
  assert done.stdout.count(" min ") == 6 and (second / "side_by_side.png").exists()  # ... but is plotted
  for name in ("rnn_jax", "torch"):
    line = next(line for line in done.stdout.splitlines() if line.startswith(f"{name}: "))
    assert line.count(" min ") == 3, done.stdout  # validations at steps 20, 40, 60


def test_side_by_side_names_an_unknown_rnn_jax_field_in_one_line(tmp_path):
  done = subprocess.run([sys.executable, "-m", "experiments.language_modeling.side_by_side", "--minutes=1",
                         f"--out={tmp_path}", "--rnn_jax_config.model.embed_sise=6"],
                        cwd=REPO, capture_output=True, text=True, timeout=120)
  assert done.returncode != 0
  assert done.stderr.strip().splitlines() == [
      "--rnn_jax_config.model.embed_sise: config.model has no field 'embed_sise'; did you mean "
      "config.model.embed_size?"]


def test_side_by_side_names_a_program_that_failed(tmp_path):
  corpus = _corpus(tmp_path)
  done = subprocess.run([sys.executable, "-m", "experiments.language_modeling.side_by_side", "--minutes=5",
                         f"--out={tmp_path / 'out'}", "--programs=rnn_jax", f"--config.data.path={corpus}",
                         "--rnn_jax_config.model.cell=no_such_cell"],
                        cwd=REPO, capture_output=True, text=True, timeout=300)
  assert done.returncode == 1
  assert done.stderr.strip().splitlines()[-1] == f"rnn_jax failed: see {tmp_path / 'out' / 'rnn_jax.log'}"
  assert "no_such_cell" in (tmp_path / "out" / "rnn_jax.log").read_text()


def test_reference_restarts_the_streams_that_draw_a_reset():
  torch = pytest.importorskip("torch")
  state = (torch.ones(2, 4, 3, requires_grad=True), 2 * torch.ones(2, 4, 3, requires_grad=True))
  reset_B = np.array([True, False, False, True])
  h, c = torch_reference._carried(torch, state, reset_B)  # pylint: disable=protected-access
  assert not h.requires_grad and not c.requires_grad  # truncated BPTT
  np.testing.assert_array_equal(c.numpy()[:, :, 0], [[0, 2, 2, 0]] * 2)
  np.testing.assert_array_equal(h.numpy()[:, reset_B], 0.0)


def test_reference_embeddings_start_at_the_configured_scale():
  torch = pytest.importorskip("torch")
  config = torch_comparison.get_config()
  config.model.hidden_size, config.model.embed_size = 8, 64
  for std in (1.0, 4.0):
    config.model.embed_init_std = std
    weight = torch_reference.make_model(torch, config, vocab_size=300).embed.weight.detach().numpy()
    assert abs(weight.std() / std - 1) < 0.02, std  # 19,200 draws: the sample std is within 0.5 %


def test_reference_forget_gates_start_at_the_configured_bias():
  torch = pytest.importorskip("torch")
  config = torch_comparison.get_config()
  config.model.hidden_size, config.model.embed_size, config.model.forget_bias = 8, 4, 0.5
  lstm = torch_reference.make_model(torch, config, vocab_size=10).lstm
  for layer in range(config.model.num_layers):
    bias = (getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")).detach().numpy()
    np.testing.assert_array_equal(bias[8:16], 0.5)  # torch's gate order: input, forget, cell, output
    assert np.all(bias[:8] != 0.5) and np.all(bias[16:] != 0.5)


def test_reference_refuses_a_schedule_it_would_not_follow(tmp_path):
  done = subprocess.run([sys.executable, "-m", "experiments.language_modeling.torch_reference",
                         "--config=experiments/language_modeling/configs/shakespeare_char.py",
                         f"--metrics={tmp_path / 'metrics.jsonl'}"], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert done.returncode != 0 and done.stderr.strip().splitlines() == [
      "the PyTorch reference trains with Adam at a constant rate: config.optimizer.name='adam' and "
      "schedule='cosine' must be 'adam' and 'constant'"]
  assert not (tmp_path / "metrics.jsonl").exists()

