"""Faults a user meets in a training run, reproduced as they meet them: each gets one clear line, and nothing the
workdir held is lost.

Command-line cases run the language-modeling experiment on a tiny corpus; loop cases use the regression task of
test_train.
"""

import dataclasses
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest

from experiments.language_modeling import lm
from rnn_jax import train
from rnn_jax.data import text
from rnn_jax.train import checkpoint
from rnn_jax.train import workdir as workdir_lib
from tests.test_language_modeling import _tiny_config
from tests.test_train import _config, _regression_task

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _lm_command(workdir, corpus, *flags):
  return [sys.executable, "-m", "experiments.language_modeling.main", f"--workdir={workdir}",
          f"--config.data.path={corpus}", "--config.data.batch_size=4", "--config.data.eval_batch_size=2",
          "--config.data.bptt=16", "--config.model.hidden_size=32", "--config.model.embed_size=16",
          "--config.log_every=1", "--config.eval_every=1000", "--config.sample.length=10",
          *flags]


def _run_lm(workdir, corpus, *flags):
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  return subprocess.run(_lm_command(workdir, corpus, *flags), cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=600, check=False)


def _corpus(tmp_path):
  corpus = tmp_path / "corpus.txt"
  corpus.write_text(text.stdlib_docstring_text()[:20_000])
  return corpus


def _files(directory) -> dict:
  """`{relative path: bytes}` of every file under `directory`."""
  out = {}
  for root, _, names in os.walk(directory):
    for name in names:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, directory)] = f.read()
  return out


def _one_line_error(result, kind: str) -> str:
  """The failed command's error line, after checking that it is the only trace of the error."""
  assert result.returncode != 0, result.stdout[-2000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith(f"{kind}: "), result.stderr[-3000:]
  return last


@pytest.fixture(scope="module")
def trained_lm(tmp_path_factory):
  """`(corpus, workdir)` of a finished 4-step LM run with checkpoints at steps 2 and 4."""
  base = tmp_path_factory.mktemp("trained_lm")
  corpus, workdir = _corpus(base), base / "run"
  result = _run_lm(workdir, corpus, "--config.num_steps=4", "--config.checkpoint_every=2")
  assert result.returncode == 0, result.stderr[-2000:]
  return corpus, workdir


def _copy(trained_lm, tmp_path):
  corpus, workdir = trained_lm
  shutil.copytree(workdir, tmp_path / "run")
  return corpus, tmp_path / "run"


def test_a_refused_run_changes_nothing_in_the_workdir(trained_lm, tmp_path):
  corpus, workdir = _copy(trained_lm, tmp_path)
  before = _files(workdir)
  refused = _run_lm(workdir, corpus, "--config.num_steps=6", "--config.model.hidden_size=48")
  line = _one_line_error(refused, "CheckpointError")
  assert "cannot restore checkpoint step 4" in line and "incompatible" in line and "state/params/" in line, line
  assert _files(workdir) == before  # config.json, vocab.json, metrics, checkpoints: all as they were
  sample = _run_lm(workdir, corpus, "--mode=sample", "--config.sample.prime=The")
  assert sample.returncode == 0 and sample.stdout.startswith("The"), sample.stderr[-2000:]


def _damage_largest_data_file(checkpoint, damage):
  path = max((os.path.join(root, name) for root, _, names in os.walk(checkpoint) for name in names),
             key=os.path.getsize)
  with open(path, "rb") as f:
    body = bytearray(f.read())
  with open(path, "wb") as f:
    f.write(damage(body))


def _flip_middle_bytes(body):
  for i in range(len(body) // 2, len(body) // 2 + 8):
    body[i] ^= 0xFF
  return body


@pytest.mark.parametrize("damage,problem", [
    (lambda body: body[:len(body) // 2], r"it is corrupt \(ValueError: OUT_OF_RANGE: Error reading \"state\.\S+\""),
    (_flip_middle_bytes, r"state/\S+ differs from what was saved \(checksum mismatch\)"),
])
def test_a_damaged_checkpoint_is_one_line_naming_it_and_the_leaf_then_the_previous_one_resumes(
    trained_lm, tmp_path, damage, problem):
  corpus, workdir = _copy(trained_lm, tmp_path)
  _damage_largest_data_file(workdir / "checkpoints" / "4", damage)
  before = _files(workdir)
  line = _one_line_error(_run_lm(workdir, corpus, "--config.num_steps=6"), "CheckpointError")
  assert re.search(f"cannot restore checkpoint step 4 in {workdir / 'checkpoints'}: {problem}", line), line
  assert f"move {workdir / 'checkpoints' / '4'} out of {workdir / 'checkpoints'} to resume from step 2" in line
  assert _files(workdir) == before
  (workdir / "checkpoints" / "4").rename(tmp_path / "damaged_step_4")  # as the message says
  resumed = _run_lm(workdir, corpus, "--config.num_steps=6")
  assert resumed.returncode == 0 and "Restored checkpoint step 2" in resumed.stderr, resumed.stderr[-2000:]


@pytest.fixture
def small_disk(tmp_path):
  """`(path, mount(size_bytes))`: a tmpfs mounted at `path` on demand, a disk that fills up; skips the test where
  mounting is not allowed."""
  path = tmp_path / "disk"
  path.mkdir()

  def mount(size_bytes: int):
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
                            capture_output=True, text=True, check=False)
    if result.returncode:
      pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip()}")

  yield path, mount
  subprocess.run(["umount", str(path)], capture_output=True, check=False)


def test_a_full_disk_is_one_line_before_writing_and_another_workdir_resumes(trained_lm, tmp_path, small_disk):
  corpus, workdir = trained_lm
  disk, mount = small_disk
  mount(sum(len(body) for body in _files(workdir).values()) + 200_000)
  shutil.copytree(workdir, disk / "run")
  before = _files(disk / "run" / "checkpoints")
  refused = _run_lm(disk / "run", corpus, "--config.num_steps=6", "--config.checkpoint_every=2")
  line = _one_line_error(refused, "CheckpointError")
  assert re.search(rf"cannot save checkpoint step 6 in {disk / 'run' / 'checkpoints'} \(it needs about [\d.]+ MiB\); "
                   r"0\.\d MiB free there: free some space or use another --workdir; the last good checkpoint "
                   r"\(step 4\) is kept", line), line
  assert _files(disk / "run" / "checkpoints") == before
  shutil.copytree(disk / "run", tmp_path / "elsewhere")
  resumed = _run_lm(tmp_path / "elsewhere", corpus, "--config.num_steps=6", "--config.checkpoint_every=2")
  assert resumed.returncode == 0 and "Restored checkpoint step 4" in resumed.stderr, resumed.stderr[-2000:]
  assert [m["step"] for m in train.read_metrics(str(tmp_path / "elsewhere")) if "loss" in m] == list(range(1, 7))


def _with_file_size_limit(kib: int, command: list) -> list:
  """`command` run so that the OS refuses writes past `kib` KiB per file, as a disk that fills up midway does (the
  SIGXFSZ such a write sends is ignored: the write fails instead of killing the process)."""
  return ["bash", "-c", f'trap "" XFSZ; ulimit -f {kib}; exec "$@"', "bash", *command]


def test_a_checkpoint_write_refused_midway_ends_in_one_error_line_and_a_rerun_resumes(trained_lm, tmp_path):
  corpus, workdir = _copy(trained_lm, tmp_path)
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  command = _lm_command(workdir, corpus, "--config.num_steps=6", "--config.checkpoint_every=2")
  refused = subprocess.run(_with_file_size_limit(20, command), cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=600, check=False)
  line = _one_line_error(refused, "CheckpointError")  # nothing of the writes TensorStore's threads were finishing
  assert re.fullmatch(r"CheckpointError: cannot save checkpoint step 6 in \S+ \(.*File too large.*\); [\d.]+ MiB "
                      r"free there: free some space or use another --workdir; the last good checkpoint \(step 4\) "
                      r"is kept", line), line
  resumed = _run_lm(workdir, corpus, "--config.num_steps=6", "--config.checkpoint_every=2")
  assert resumed.returncode == 0 and "Restored checkpoint step 4" in resumed.stderr, resumed.stderr[-2000:]
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4", "6"]  # the refused save's remains are gone
  assert [m["step"] for m in train.read_metrics(str(workdir)) if "loss" in m] == list(range(1, 7))


@pytest.mark.parametrize("opening", [False, True])
def test_a_tensorstore_write_error_keeps_the_leaf_and_the_systems_reason_in_one_line(opening):
  # TensorStore's two shapes of a refused write: writing a chunk ends with the system's reason; opening the array
  # (writing its .zarray) appends the array's JSON spec after it, longer than the line's tail.
  folder = "/tmp/run/checkpoints/6.orbax-checkpoint-tmp/default.orbax-checkpoint-tmp/ocdbt.process_0"
  reason = (f'Error writing "state.model_state.0.c/.zarray" in OCDBT database at local file "{folder}/": Failed '
            f'writing: "{folder}/d/3c96f4236fd7": Failed to write 312519 bytes to file 7: File too large '
            "[os_error_code='27']")
  spec = json.dumps({"driver": "zarr", "kvstore": {"driver": "ocdbt", "path": folder}, "metadata": {
      "chunks": [4, 32], "dtype": "<f4", "shape": [4, 32]}, "open": True}).replace('"', '\\"')  # escaped, as printed
  message = (f'OUT_OF_RANGE: Error opening "zarr" driver: {reason} [tensorstore_spec=\'{spec}\']' if opening
             else f"OUT_OF_RANGE: {reason}")
  try:
    try:
      raise ValueError(message)
    except ValueError as e:
      raise RuntimeError("orbax's wrapper") from e
  except RuntimeError as e:
    line = checkpoint.one_line(e)
  assert line.startswith('ValueError: OUT_OF_RANGE: Error ') and "state.model_state.0.c/.zarray" in line, line
  assert line.endswith("File too large [os_error_code='27']") and "\n" not in line and len(line) <= 405, line


def test_a_second_run_on_a_workdir_in_use_exits_at_once_naming_the_holder(tmp_path):
  corpus, workdir = _corpus(tmp_path), tmp_path / "run"
  with workdir_lib.locked(str(workdir)):
    start = time.perf_counter()
    second = _run_lm(workdir, corpus, "--config.num_steps=100000")
    line = _one_line_error(second, "WorkdirLockedError")
  assert f"in use by another run (pid {os.getpid()} on host" in line, line
  assert time.perf_counter() - start < 120  # refused before training, not after
  assert sorted(os.listdir(workdir)) == ["lock"]  # no config, vocabulary, metrics or checkpoints of its own
  # A lock file left by a run that is gone (SIGKILL, reboot) holds nothing: the next run takes it over.
  (workdir / "lock").write_text("pid 999999 on host elsewhere since long ago\n")
  state = train.train_loop(_regression_task(), _config(), str(workdir))
  assert int(state.step) == 6 and (workdir / "lock").read_text() == ""


def test_metrics_never_hold_a_step_twice_after_resuming(tmp_path):
  train.train_loop(_regression_task(), _config(num_steps=6, checkpoint_every=4), str(tmp_path))
  # A run that went past its last checkpoint (step 4) wrote steps 5 and 6; resuming trains them again.
  (tmp_path / "checkpoints" / "6").rename(tmp_path / "step6_moved_away")
  train.train_loop(_regression_task(), _config(num_steps=8, checkpoint_every=4), str(tmp_path))
  assert [m["step"] for m in train.read_metrics(str(tmp_path)) if "loss" in m] == list(range(1, 9))
  # Lines written twice for the same steps (as two runs sharing a workdir once did) are kept once.
  with open(tmp_path / "metrics.jsonl") as f:
    lines = f.readlines()
  with open(tmp_path / "metrics.jsonl", "w") as f:
    f.writelines(lines[:4] + lines[:4] + lines[4:])
  train.train_loop(_regression_task(), _config(num_steps=10, checkpoint_every=4), str(tmp_path))
  assert [m["step"] for m in train.read_metrics(str(tmp_path)) if "loss" in m] == list(range(1, 11))


def test_an_evaluation_cut_short_runs_when_the_run_resumes(tmp_path):
  evaluated = []

  def evaluate(params):
    if len(evaluated) == 1 and not (tmp_path / "crashed").exists():  # the run dies during its second evaluation
      (tmp_path / "crashed").touch()
      raise SystemExit("killed")
    evaluated.append(float(params["w"][0]))
    return {"valid_loss": float(jnp.sum(params["w"]))}

  task = dataclasses.replace(_regression_task(), evaluate=evaluate)
  config = _config(num_steps=9, eval_every=3, checkpoint_every=3)
  with pytest.raises(SystemExit):
    train.train_loop(task, config, str(tmp_path))
  assert train.Checkpointer(str(tmp_path / "checkpoints")).latest_step() == 6  # saved, not yet evaluated
  train.train_loop(task, config, str(tmp_path))
  assert [m["step"] for m in train.read_metrics(str(tmp_path)) if m.get("evaluation")] == [3, 6, 9]
  # A rerun of the finished run only restores: everything due was done.
  train.train_loop(task, config, str(tmp_path))
  assert len(evaluated) == 3


def _poisoned_task(poison_at_step):
  """The regression task whose carried `model_state` becomes infinite at one step while its loss stays finite."""
  task = _regression_task()

  def loss_fn(params, model_state, batch, rng, train_mode):
    loss, (metrics, model_state) = task.loss_fn(params, model_state, batch, rng, train_mode)
    return loss, (metrics, model_state + batch["poison"][0])

  def train_batch(step):
    return {**task.train_batch(step), "poison": np.full((8,), np.inf if step == poison_at_step else 0.0, np.float32)}

  return dataclasses.replace(task, loss_fn=loss_fn, train_batch=train_batch)


def test_a_poisoned_state_is_never_saved_as_a_good_checkpoint(tmp_path):
  with pytest.raises(train.NonFiniteLossError, match=r"non-finite values in model_state after step 4; stopping "
                     r"without saving them. The last good checkpoint \(step 2\)"):
    train.train_loop(_poisoned_task(poison_at_step=3), _config(), str(tmp_path))
  assert train.Checkpointer(str(tmp_path / "checkpoints")).latest_step() == 2
  state = train.train_loop(_regression_task(), _config(), str(tmp_path))  # resumes from the good step 2
  assert int(state.step) == 6 and math.isfinite(float(state.model_state))
  # An update so large that the very first step's params overflow: no checkpoint at all, and it says so.
  config = _config(checkpoint_every=1, divergence_factor=0.0)
  config.optimizer.learning_rate = 1e38
  with pytest.raises(train.NonFiniteLossError, match=r"in params/w after step 1.*No checkpoint had been saved yet"):
    train.train_loop(_regression_task(), config, str(tmp_path / "fresh"))
  assert train.Checkpointer(str(tmp_path / "fresh" / "checkpoints")).latest_step() is None


@pytest.mark.parametrize("field,value", [("learning_rate", math.inf), ("learning_rate", math.nan),
                                         ("b2", math.nan), ("clip_norm", math.inf)])
def test_non_finite_hyper_parameters_are_refused_before_any_compute(tmp_path, field, value):
  config = _tiny_config(tmp_path / "absent.txt")  # refused before the corpus is read
  config.optimizer[field] = value
  with pytest.raises(ValueError, match=f"config.optimizer.{field} must be a finite number, got {value}"):
    lm.run(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_a_diverging_run_stops_naming_step_and_loss(tmp_path):
  corpus = tmp_path / "corpus.txt"
  corpus.write_text(text.stdlib_docstring_text()[:20_000])
  config = _tiny_config(corpus)
  config.optimizer.learning_rate = 1e9
  with pytest.raises(train.DivergedError, match=r"loss \S+ at step \d+ is above \S+ \(config.divergence_factor"):
    lm.run(config, str(tmp_path / "run"))
  # With the guard off, the run trains to its end and its perplexity is infinite, not an OverflowError.
  config.divergence_factor = 0.0
  config.num_steps, config.checkpoint_every = 3, 3
  lm.run(config, str(tmp_path / "unguarded"))
  final = [m for m in train.read_metrics(str(tmp_path / "unguarded")) if m.get("evaluation")][-1]
  assert final["valid_loss"] > 1000 and final["valid_perplexity"] == math.inf
  assert lm.perplexity(1e10) == math.inf and lm.perplexity(math.log(7.0)) == pytest.approx(7.0)


def test_another_corpus_on_a_workdir_is_refused_unless_asked_for(tmp_path):
  first, second = tmp_path / "first.txt", tmp_path / "second.txt"
  first.write_text(text.stdlib_docstring_text()[:20_000])
  second.write_text(text.stdlib_docstring_text()[20_000:40_000].upper())
  config = _tiny_config(first)
  config.num_steps, config.checkpoint_every, config.sample.length = 2, 2, 0
  lm.run(config, str(tmp_path / "run"))
  before = _files(tmp_path / "run")
  config = _tiny_config(second)
  config.num_steps, config.checkpoint_every, config.sample.length = 4, 2, 0
  with pytest.raises(lm.CorpusChangedError, match=r"vocab.json was built from another corpus \(.*first.txt, 18000 "
                     r"characters of training text\) than config.data.path=.*second.txt \(18000\): use another "
                     r"--workdir, or --config.data.new_corpus_ok=True"):
    lm.run(config, str(tmp_path / "run"))
  assert _files(tmp_path / "run") == before
  config.data.new_corpus_ok = True
  assert int(lm.run(config, str(tmp_path / "run")).step) == 4
  assert lm.saved_vocabulary(str(tmp_path / "run")).to_json() == before["vocab.json"].decode()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_saves_a_checkpoint_and_exits_then_a_rerun_resumes(tmp_path, signum):
  corpus, workdir = _corpus(tmp_path), tmp_path / "run"
  flags = ("--config.num_steps=100000", "--config.checkpoint_every=100000")
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  proc = subprocess.Popen(_lm_command(workdir, corpus, *flags), cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while len(train.read_metrics(str(workdir))) < 5 and time.time() < deadline:
    time.sleep(0.1)
  proc.send_signal(signum)
  _, stderr = proc.communicate(timeout=300)
  result = subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr)
  line = _one_line_error(result, "Interrupted")
  saved = train.Checkpointer(str(workdir / "checkpoints")).latest_step()
  assert saved == train.read_metrics(str(workdir))[-1]["step"] >= 5
  assert f"{signum.name} received: saved checkpoint step {saved} in " in line and "rerun the same command" in line, line
  resumed = _run_lm(workdir, corpus, f"--config.num_steps={saved + 2}", "--config.checkpoint_every=100000")
  assert resumed.returncode == 0 and f"Restored checkpoint step {saved}" in resumed.stderr, resumed.stderr[-2000:]
  assert [m["step"] for m in train.read_metrics(str(workdir)) if "loss" in m] == list(range(1, saved + 3))
