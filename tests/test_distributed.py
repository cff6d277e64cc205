"""Several processes on JAX's multi-controller runtime (here two on this machine's CPU, joined over
127.0.0.1 with gloo collectives): the same loss curve, evaluation and checkpoints as one process,
one writer, and a resume on another number of processes."""

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from rnn_jax import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = "the quick brown fox jumps over the lazy dog.\n" * 60


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


TRANSLATION = ["--config.num_steps=6", "--config.log_every=1", "--config.eval_every=6", "--config.checkpoint_every=6",
               "--config.data.num_train=400", "--config.data.num_valid=20", "--config.data.num_test=20",
               "--config.data.batch_size=8", "--config.model.embed_size=16", "--config.model.encoder_size=16",
               "--config.model.decoder_size=16", "--config.model.attention_size=16", "--config.model.output_size=16",
               "--config.decode.beam_size=2", "--config.eval.valid_examples=10", "--config.eval.heatmaps=0"]


def _command(workdir, corpus, num_steps, *extra):
  return [sys.executable, "-m", "experiments.language_modeling.main", f"--workdir={workdir}",
          f"--config.data.path={corpus}", "--config.data.batch_size=4", "--config.data.eval_batch_size=2",
          "--config.data.bptt=16", "--config.model.hidden_size=32", "--config.model.embed_size=16",
          "--config.model.dropout=0.1", "--config.log_every=1", "--config.eval_every=10", "--config.checkpoint_every=10",
          f"--config.num_steps={num_steps}", "--config.sample.length=5", *extra]


def _launch(workdir, corpus, num_steps, processes, *extra):
  """The LM command (translation's if `corpus` is None) started in `processes` processes (stdout and stderr
  together)."""
  port = _free_port()
  env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu"}
  distributed = lambda i: ([f"--config.distributed.num_processes={processes}", f"--config.distributed.process_id={i}",
                            f"--config.distributed.coordinator_address=127.0.0.1:{port}"] if processes > 1 else [])
  command = _command(workdir, corpus, num_steps) if corpus else [
      sys.executable, "-m", "experiments.translation.main", f"--workdir={workdir}", *TRANSLATION]
  return [subprocess.Popen(command + distributed(i) + list(extra), cwd=REPO, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
          for i in range(processes)]


def _run(workdir, corpus, num_steps, processes):
  """Runs the LM command (translation's if `corpus` is None) in `processes` processes; returns their outputs."""
  launched = _launch(workdir, corpus, num_steps, processes)
  outputs = [p.communicate(timeout=300)[0] for p in launched]
  for p, out in zip(launched, outputs):
    assert p.returncode == 0, out[-3000:]
  return outputs


def _curve(workdir, evaluated="valid_loss"):
  metrics = train.read_metrics(str(workdir))
  losses = {m["step"]: m["loss"] for m in metrics if "loss" in m and not m.get("evaluation")}
  evaluations = {m["step"]: m[evaluated] for m in metrics if m.get("evaluation")}
  return losses, evaluations


@pytest.mark.slow
def test_two_processes_train_as_one_and_resume_on_one(tmp_path):
  corpus = tmp_path / "corpus.txt"
  corpus.write_text(TEXT)
  _run(tmp_path / "one", corpus, 20, processes=1)
  outputs = _run(tmp_path / "two", corpus, 10, processes=2)
  one_losses, one_evaluations = _curve(tmp_path / "one")
  two_losses, two_evaluations = _curve(tmp_path / "two")
  assert sorted(two_losses) == list(range(1, 11))  # one writer: every step once
  np.testing.assert_allclose([two_losses[s] for s in range(1, 11)], [one_losses[s] for s in range(1, 11)], rtol=2e-5)
  np.testing.assert_allclose(two_evaluations[10], one_evaluations[10], rtol=2e-5)
  assert "Training steps 0..10 on 2 cpu device(s) in 2 process(es)" in outputs[0]
  assert "Training steps" not in outputs[1]  # the second process logs warnings and errors only
  assert json.loads((tmp_path / "two" / "config.json").read_text())["distributed"]["num_processes"] == 2

  # The two-process checkpoint at step 10 resumes in one process, on the one-process curve.
  _run(tmp_path / "two", corpus, 20, processes=1)
  resumed_losses, resumed_evaluations = _curve(tmp_path / "two")
  np.testing.assert_allclose([resumed_losses[s] for s in range(11, 21)], [one_losses[s] for s in range(11, 21)],
                             rtol=1e-4)
  np.testing.assert_allclose(resumed_evaluations[20], one_evaluations[20], rtol=1e-4)


def test_several_processes_need_a_coordinator(tmp_path):
  result = subprocess.run(_command(tmp_path / "w", "stdlib", 1, "--config.distributed.num_processes=2"), cwd=REPO,
                          env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=300)
  assert result.returncode != 0
  assert "2 processes need a coordinator address" in result.stderr


@pytest.mark.slow
def test_a_killed_process_ends_the_other_in_one_line_and_the_run_resumes(tmp_path):
  corpus = tmp_path / "corpus.txt"
  corpus.write_text(TEXT)
  workdir = tmp_path / "run"
  first, second = _launch(workdir, corpus, 100_000, 2, "--config.distributed.heartbeat_timeout_s=10")
  deadline = time.time() + 240
  while not (workdir / "checkpoints" / "10").exists():  # killed after a checkpoint, mid-run
    assert time.time() < deadline and first.poll() is None, first.communicate()[0][-3000:]
    time.sleep(0.5)
  second.kill()
  second.wait()
  start = time.time()
  output = first.communicate(timeout=120)[0]
  assert first.returncode == 1 and time.time() - start < 60
  last = output.strip().splitlines()[-1]
  assert last.startswith("process 0: PeerLostError: another process of this run stopped"), output[-3000:]
  assert "Rerun every process with the same command" in last and "Fatal Python error" not in output
  checkpointed = train.Checkpointer(str(workdir / "checkpoints"), read_only=True)
  resumed_from = checkpointed.latest_step()
  checkpointed.close()
  assert resumed_from >= 10
  outputs = _run(workdir, corpus, resumed_from + 5, processes=2)  # the same two-process command resumes
  assert f"Training steps {resumed_from}..{resumed_from + 5}" in outputs[0]


@pytest.mark.slow
def test_translation_in_two_processes_trains_and_scores_as_one(tmp_path):
  _run(tmp_path / "one", None, None, processes=1)
  _run(tmp_path / "two", None, None, processes=2)
  one_losses, _ = _curve(tmp_path / "one", "valid_nll")
  two_losses, two_evaluations = _curve(tmp_path / "two", "valid_nll")
  assert sorted(two_losses) == list(range(1, 7))
  np.testing.assert_allclose([two_losses[s] for s in range(1, 7)], [one_losses[s] for s in range(1, 7)], rtol=2e-5)
  one_results = json.loads((tmp_path / "one" / "results.json").read_text())
  two_results = json.loads((tmp_path / "two" / "results.json").read_text())
  assert two_results["greedy"]["bleu"] == pytest.approx(one_results["greedy"]["bleu"])
  assert two_results["beam"]["bleu"] == pytest.approx(one_results["beam"]["bleu"])
