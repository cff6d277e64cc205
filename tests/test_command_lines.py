"""The experiments' command lines refuse bad input by name, before any training, and start with a short, plain
first screen.

Each case would otherwise train first (the step counts here are large) and fail or mislead afterwards; the
subprocess timeout makes a case that trains before failing fail the test.
"""

import functools
import importlib
import os
import re
import subprocess
import sys

import jax.numpy as jnp
import pytest

from rnn_jax import train
from experiments import command_line

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launch(module, *flags, cwd=REPO, data_dir=None):
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  if data_dir:
    env["RNN_JAX_DATA"] = data_dir
  return subprocess.run([sys.executable, "-m", f"experiments.{module}.main", *flags], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("checker,field,value,message", [
    ("clockwork.waveform", "sweep.seeds", (), "config.sweep.seeds needs at least one value"),
    ("clockwork.waveform", "sweep.models", ("clockwork", "gru"), "config.sweep.models: unknown ['gru']"),
    ("reservoir.esn", "data.fit_length", 0, "config.data needs fit_length > 0 and washout >= 0"),
    ("shapes.examples", "examples", ("tagger", "parser"), "config.examples must name some of"),
    ("tree.arithmetic", "data.train_leaves", (5, 1), "config.data.train_leaves must be (min, max)"),
])
def test_an_experiments_check_names_the_field(checker, field, value, message):
  experiment = checker.split(".")[0]
  config = importlib.import_module(f"experiments.{experiment}.configs.default").get_config()
  *parents, name = field.split(".")
  functools.reduce(getattr, parents, config)[name] = value
  with pytest.raises(train.ConfigError, match=re.escape(message)):
    command_line.validated(importlib.import_module(f"experiments.{checker}").validate, config)


@pytest.mark.parametrize("module,flags,message", [
    ("clockwork", ["--config.num_steps=0"], "config.num_steps must be a positive integer, got 0"),
    ("reservoir", ["--config.model.spectral_radius=-1"], "config.model.spectral_radius must be > 0"),
    ("shapes", ["--config.num_steps=-1"], "config.num_steps must be a positive integer, got -1"),
    ("tree", ["--config.models=('rvnn','bogus')"], "config.models must name some of ('rvnn', "),
    ("long_range", ["--config.lengths=(0,)"], "config.lengths must be positive integers, got (0,)"),
    ("language_modeling", ["--config.optimizer.learning_rate=-1"], "config.optimizer.learning_rate must be > 0"),
    ("translation", ["--config.data.tokenizer=bpe"], "config.data.tokenizer must be 'word' or 'sentencepiece'"),
    ("handwriting", ["--config.model.num_layers=0"], "config.model.num_layers"),
    ("speech", ["--config.features.utterance_norm=max"], "config.features.utterance_norm must be one of"),
])
def test_a_bad_config_value_is_one_line_naming_the_field_before_anything_is_written(module, flags, message, tmp_path):
  result = _launch(module, f"--workdir={tmp_path / 'run'}", *flags)
  assert result.returncode == 1
  lines = result.stderr.splitlines()
  assert len(lines) == 1 and lines[0].startswith("ConfigError: config.") and message in lines[0], result.stderr[-2000:]
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("module,flags", [
    ("language_modeling", ["--mode=sample"]),
    ("translation", ["--mode=translate"]),
    ("handwriting", ["--mode=eval"]),
    ("speech", ["--mode=recognize", f"--input={REPO}"]),  # a folder that holds no WAV: refused first
])
def test_using_a_workdir_that_holds_no_trained_run_is_one_line(module, flags, tmp_path):
  result = _launch(module, f"--workdir={tmp_path}", *flags)
  assert result.returncode == 1
  expected = (f"DataError: no .wav files at {REPO!r}: pass a WAV file or a folder holding some" if module == "speech"
              else f"NotTrainedError: no config.json in {tmp_path}: train with this --workdir first")
  assert result.stderr.splitlines() == [expected]


@pytest.mark.parametrize("module,flags,message", [
    ("benchmark", ["--rounds=0", "--output=/dev/null"], "flag --rounds=0: 0 is not a positive integer"),
    ("reservoir", ["extra"], "unexpected arguments: ['extra']"),
    ("translation", ["--mode=compare", "--compare=runs/a"], "--compare takes label=workdir entries"),
    ("translation", ["--mode=translate", "--input=/nonexistent/sentences.txt"],
     "DataError: --input=/nonexistent/sentences.txt: no such file; give a file of source sentences"),
    ("language_modeling", ["--config.mesh.model=3", "--workdir=/nonexistent/never"],
     "MeshError: config.mesh.model=3 does not divide the 1 devices: choose a divisor"),
])
def test_bad_flags_are_named_before_training(module, flags, message):
  result = _launch(module, *flags)
  assert result.returncode != 0 and message in result.stderr, result.stderr[-1000:]
  assert "Traceback" not in result.stderr


def test_output_folder_that_is_a_file_fails_before_training(tmp_path):
  (tmp_path / "taken").write_text("")
  result = _launch("clockwork", f"--workdir={tmp_path / 'taken'}", "--config.num_steps=100000")
  assert result.returncode != 0 and "File exists" in result.stderr, result.stderr[-1000:]


def test_default_config_is_found_from_any_working_directory(tmp_path):
  result = _launch("language_modeling", f"--workdir={tmp_path}", "--config.model.cell=lstn", cwd=str(tmp_path))
  assert "config.model.cell: unknown cell 'lstn'" in result.stderr, result.stderr[-1000:]


@pytest.mark.parametrize("module,config,name", [
    ("language_modeling", "shakespeare_char", "tiny_shakespeare"),
    ("translation", "tatoeba", "tatoeba_fra_eng"),
    ("handwriting", "recognize_uji", "uji_pen_digits"),
])
def test_absent_dataset_fails_in_one_line_naming_the_fetch_command(module, config, name, tmp_path):
  empty = tmp_path / "data"
  result = _launch(module, f"--config=experiments/{module}/configs/{config}.py", f"--workdir={tmp_path / 'run'}",
                   data_dir=str(empty))
  assert result.returncode == 1
  assert result.stderr.splitlines() == [f"{name} is not in {empty}: run python -m rnn_jax.data.fetch {name} "
                                        "(or --from=PATH offline)"]


def test_unprepared_tfds_catalog_dataset_fails_in_one_line(tmp_path):
  result = _launch("language_modeling", "--config.data.path=tfds:tiny_shakespeare",
                   f"--config.data.tfds_dir={tmp_path}", f"--workdir={tmp_path / 'run'}")
  assert result.returncode == 1
  assert result.stderr.splitlines() == [f"tfds:tiny_shakespeare is not prepared in {tmp_path}: add "
                                        "--config.data.download=True to let TFDS download and prepare it "
                                        "(needs internet)"]
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("module,flag,line", [
    ("language_modeling", "--config.model.hiden_size=10",
     "--config.model.hiden_size: config.model has no field 'hiden_size'; did you mean config.model.hidden_size?"),
    ("translation", "--config.modle.attention=none",
     "--config.modle.attention: config has no field 'modle'; did you mean config.model?"),
    ("handwriting", "--config.eval.bias=1",
     "--config.eval.bias: config.eval has no field 'bias'; did you mean config.eval.biases?"),
    ("reservoir", "--config.model.sise=500",
     "--config.model.sise: config.model has no field 'sise'; did you mean config.model.size?"),
])
def test_config_typo_is_one_line_naming_the_closest_field(module, flag, line, tmp_path):
  result = _launch(module, f"--workdir={tmp_path}", flag)
  assert result.returncode == 1
  assert result.stderr.splitlines() == [line]


def test_default_lm_run_first_screen_is_short_and_plain(tmp_path):
  """The first screen of the README's first command: no progress bars or escape codes (the embedded corpus is
  prepared afresh here), and only the data, model, workdir and device lines before training starts."""
  env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}  # let JAX probe its backends, as a user's would
  result = subprocess.run(
      [sys.executable, "-m", "experiments.language_modeling.main", f"--workdir={tmp_path / 'run'}",
       f"--config.data.tfds_dir={tmp_path / 'tfds'}", "--config.num_steps=2", "--config.log_every=1",
       "--config.eval_every=2", "--config.sample.length=5"],
      cwd=REPO, env=dict(env, PYTHONPATH=REPO), capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  output = result.stderr + result.stdout
  assert "\x1b" not in output and "\r" not in output
  lines = result.stderr.splitlines()
  first_screen = lines[:next(i for i, line in enumerate(lines) if "Training steps" in line) + 1]
  assert len(first_screen) <= 10, first_screen
  text = "\n".join(first_screen)
  assert "corpus: stdlib" in text and "parameters" in text and f"workdir {tmp_path / 'run'}" in text
  assert "cpu device" in text or "gpu device" in text


@pytest.mark.parametrize("module,blocked", [("translation", "sacrebleu"), ("reservoir", "matplotlib")])
def test_without_the_experiments_extra_a_run_stops_at_once_in_one_line(module, blocked):
  """As in an install without `.[experiments]`: the module cannot be imported."""
  launch = (f"import runpy, sys; sys.modules[{blocked!r}] = None; sys.argv = ['main']; "
            f"runpy.run_module('experiments.{module}.main', run_name='__main__')")
  result = subprocess.run([sys.executable, "-c", launch], cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
                          capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 1
  assert result.stderr.splitlines() == [f"this experiment needs {blocked}: pip install -e '.[experiments]' "
                                        "(the experiments extra)"]


def test_parameter_count_counts_the_params_and_not_the_model_state():
  init = lambda key: ({"w": jnp.zeros((3, 4)), "b": jnp.zeros(4)}, jnp.zeros(100))
  assert command_line.parameter_count(init) == 16
