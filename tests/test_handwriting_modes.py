"""Handwriting as a tool on trained (tiny) workdirs: recognize a file, write a text, eval on other data."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from rnn_jax import train
from rnn_jax.data import hershey, ink, strokes
from rnn_jax.data.sources import DataError
from experiments.handwriting import handwriting, modes
from experiments.handwriting.configs import base as base_config

CHARSET = "acelnot"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny_config(task, tfds_dir):
  c = base_config.base_config()
  c.task = task
  c.data.tfds_dir = str(tfds_dir)
  c.data.synthetic.sizes = (48, 24, 24)
  c.data.synthetic.charset = CHARSET
  c.data.synthetic.min_length, c.data.synthetic.max_length = 2, 3
  c.data.pad_multiple = 96
  c.batch_size = 24
  c.num_steps = c.eval_every = c.log_every = c.checkpoint_every = 2
  c.model.hidden_size, c.model.num_layers = 16, 1
  c.eval.num_pictures, c.eval.beam_size = 1, 4
  return c


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
  """A recognition workdir after two steps (its outputs depend on the input; it reads no word yet), which brings
  ink to unit height and resamples it, as the default config does."""
  root = tmp_path_factory.mktemp("recognizer")
  workdir = str(root / "rec")
  c = _tiny_config("recognition", root / "tfds")
  c.data.height_normalize, c.data.resample_step = True, 0.1
  handwriting.run(c, workdir)
  return workdir


@pytest.fixture(scope="module")
def synthesizer(tmp_path_factory):
  root = tmp_path_factory.mktemp("synthesizer")
  c = _tiny_config("generation", root / "tfds")
  c.model.num_mixtures, c.model.window_components = 3, 2
  c.eval.texts, c.eval.biases, c.eval.steps_per_char = ("cat",), (0.0,), 10
  workdir = str(root / "syn")
  handwriting.run(c, workdir)
  return workdir


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
  """An unconditional generator (a mixture density network reading no text) after two steps."""
  root = tmp_path_factory.mktemp("generator")
  c = _tiny_config("generation", root / "tfds")
  c.model.num_mixtures, c.model.window_components = 3, 0
  c.eval.num_samples, c.eval.sample_steps, c.eval.biases = 1, 10, (0.0,)
  workdir = str(root / "gen")
  handwriting.run(c, workdir)
  return workdir


def _saved(workdir, overrides=()):
  return modes.run_config(workdir, base_config.base_config(), overrides)


def _words_file(path, texts, seed=0):
  """A strokes JSON file of `texts` written by the Hershey synthesiser (y down, as a screen gives it)."""
  rng = np.random.default_rng(seed)
  ink.write_strokes_json(str(path), [strokes.Sample(hershey.synthesize(t, rng).points, t, "me") for t in texts])
  return str(path)


def test_recognize_prints_one_line_per_sample_in_input_order(recognizer, tmp_path, capsys):
  texts = ["lot", "a", "cancel", "to", "ten"]   # lengths in no sorted order: decoding batches reorder them
  path = _words_file(tmp_path / "mine.json", texts)
  config = _saved(recognizer, ["eval.beam_size"])
  lines = modes.recognize(recognizer, config, path, output=str(tmp_path / "out"))
  printed = capsys.readouterr().out.strip().splitlines()
  assert printed == lines and len(lines) == len(texts)
  loaded = modes.load(recognizer, config, "recognize")
  samples = ink.read(path)
  alone = [modes.transcribe(loaded, [s]) for s in samples]   # each sample decoded by itself
  for i, (line, text, found) in enumerate(zip(lines, texts, alone)):
    assert line == f"{i}\tbeam: {found.beam[0]}\tbest path: {found.best[0]}\tlabel: {text}"
  assert len({line.split("\t")[1] for line in lines}) > 1   # the transcriptions differ, so the order is tested
  assert sorted(os.listdir(tmp_path / "out")) == [f"sample_{i:03d}.png" for i in range(len(texts))]


def test_recognize_stops_at_a_bad_sample_or_skips_it_with_a_count(recognizer, tmp_path, capsys):
  path = _words_file(tmp_path / "some.json", ["cat", "ten"])
  with open(path) as f:
    items = json.load(f)
  items.insert(1, {"text": "dot", "strokes": [[[3, 4]]]})
  with open(path, "w") as f:
    json.dump(items, f)
  with pytest.raises(DataError, match=r"some.json: sample 1 is a single point"):
    modes.recognize(recognizer, _saved(recognizer), path)
  lines = modes.recognize(recognizer, _saved(recognizer), path, skip_bad=True)
  printed = capsys.readouterr().out
  assert "skipped 1 bad samples of" in printed and "sample 1 is a single point" in printed
  assert [line.split("label: ")[-1] for line in lines] == ["cat", "ten"]


def test_eval_reproduces_the_training_test_figures_and_names_its_results(recognizer, tmp_path):
  with open(os.path.join(recognizer, "results.json")) as f:
    trained = json.load(f)
  results = modes.evaluate(recognizer, _saved(recognizer))
  assert results["test_cer_beam"] != 1.0   # the beam emits characters: equal figures say more than "all blank"
  for name in ("test_cer_best_path", "test_cer_beam", "test_seq_acc_best_path", "test_seq_acc_beam"):
    assert results[name] == pytest.approx(trained[name], abs=1e-9), name
  with open(os.path.join(recognizer, "results_synthetic.json")) as f:
    assert json.load(f)["test_cer_beam"] == results["test_cer_beam"]
  path = _words_file(tmp_path / "alice.json", ["cat", "no"])
  on_file = modes.evaluate(recognizer, _saved(recognizer), path)
  assert on_file["test_examples"] == 2 and os.path.exists(os.path.join(recognizer, "results_alice.json"))
  (tmp_path / "bare.json").write_text(json.dumps([{"strokes": [[[0, 0], [1, 1]]]}]))
  with pytest.raises(DataError, match="1 of 1 samples have no label"):
    modes.evaluate(recognizer, _saved(recognizer), str(tmp_path / "bare.json"))


def test_run_config_takes_decoding_fields_and_refuses_model_fields(recognizer, tmp_path):
  with pytest.raises(train.RunError, match="no config.json in .*: train with this --workdir first"):
    modes.run_config(str(tmp_path), base_config.base_config(), [])
  given = base_config.base_config()
  given.eval.beam_size, given.model.hidden_size = 13, 512
  assert modes.run_config(recognizer, given, ["eval.beam_size"]).eval.beam_size == 13
  assert modes.run_config(recognizer, given, []).model.hidden_size == 16
  with pytest.raises(train.RunError, match="--config.model.hidden_size: the model and its preprocessing are"):
    modes.run_config(recognizer, given, ["model.hidden_size"])


def test_write_refuses_unknown_characters_in_one_line_before_any_compute(synthesizer, recognizer, monkeypatch):
  def no_restore(*_):
    raise AssertionError("restored a checkpoint before refusing the text")
  monkeypatch.setattr(modes, "restore", no_restore)
  with pytest.raises(DataError) as error:
    modes.write(synthesizer, _saved(synthesizer), ["cat", "Tea time!"], bias=1.0, samples=1, output="unused")
  assert str(error.value) == ("--text: characters ' ', '!', 'T', 'i', 'm' are not in the model's alphabet 'acelnot'; "
                              "write with those characters only")
  with pytest.raises(train.RunError, match="--mode=write needs a synthesis model"):
    modes.write(recognizer, _saved(recognizer), ["cat"], bias=1.0, samples=1, output="unused")


def test_command_line_refuses_a_text_in_one_line(synthesizer, tmp_path):
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
  done = subprocess.run([sys.executable, "-m", "experiments.handwriting.main", f"--workdir={synthesizer}",
                         "--mode=write", "--text=Tea", f"--output={tmp_path}"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=120, check=False)
  assert done.returncode == 1 and "Traceback" not in done.stderr
  assert done.stderr.strip().splitlines()[-1] == ("DataError: --text: characters 'T' are not in the model's "
                                                  "alphabet 'acelnot'; write with those characters only")
  assert not os.listdir(tmp_path)


def test_write_then_recognize_round_trip(synthesizer, recognizer, tmp_path, capsys):
  out = tmp_path / "written"
  written = modes.write(synthesizer, _saved(synthesizer), ["cat", "ten"], bias=1.0, samples=2, output=str(out))
  names = sorted(os.listdir(out))
  pictures = [f"sample_{i:03d}.{extension}" for i in range(4) for extension in ("png", "svg")]
  assert names == sorted(["window.png", "strokes.json"] + pictures)
  assert sorted(os.path.basename(p) for p in written) == names
  assert any(el.tag.endswith("path") for el in ET.parse(out / "sample_000.svg").getroot().iter())
  samples = ink.read(str(out / "strokes.json"))
  assert [s.text for s in samples] == ["cat", "cat", "ten", "ten"]
  assert all(len(s.points) > 1 and s.points[-1, 2] == 1 for s in samples)
  capsys.readouterr()
  lines = modes.recognize(recognizer, _saved(recognizer), str(out / "strokes.json"))
  assert [line.split("\t")[0] for line in lines] == ["0", "1", "2", "3"]
  assert [line.split("\t")[-1] for line in lines] == ["label: cat", "label: cat", "label: ten", "label: ten"]


def test_eval_of_a_synthesis_model_reproduces_its_test_nll_and_scores_a_file(synthesizer, tmp_path):
  with open(os.path.join(synthesizer, "results.json")) as f:
    trained = json.load(f)
  results = modes.evaluate(synthesizer, _saved(synthesizer))
  for name in ("test_nll_per_point", "test_nll_per_point_raw_units"):
    assert results[name] == pytest.approx(trained[name], rel=1e-5), name
  with open(os.path.join(synthesizer, "results_synthetic.json")) as f:
    assert json.load(f)["test_nll_per_point"] == results["test_nll_per_point"]
  on_file = modes.evaluate(synthesizer, _saved(synthesizer), _words_file(tmp_path / "bob.json", ["cat", "no"]))
  assert on_file["test_examples"] == 2 and np.isfinite(on_file["test_nll_per_point"])
  assert os.path.exists(os.path.join(synthesizer, "results_bob.json"))
  with pytest.raises(DataError, match=r"bob_too.json: sample 1 \('bat'\) holds characters 'b' outside the model's "
                     r"alphabet .* \(1 such samples\); drop them or pass --skip_bad"):
    modes.evaluate(synthesizer, _saved(synthesizer), _words_file(tmp_path / "bob_too.json", ["cat", "bat"]))
  kept = modes.evaluate(synthesizer, _saved(synthesizer), str(tmp_path / "bob_too.json"), skip_bad=True)
  assert kept["test_examples"] == 1 and np.isfinite(kept["test_nll_per_point"])
  (tmp_path / "bare.json").write_text(json.dumps([{"strokes": [[[0, 0], [1, 1]]]}]))
  with pytest.raises(DataError, match=r"1 of 1 samples have no label; .* \(the synthesis model reads it\)"):
    modes.evaluate(synthesizer, _saved(synthesizer), str(tmp_path / "bare.json"))


def test_eval_of_an_unconditional_generator_reproduces_its_test_nll_and_needs_no_labels(generator, tmp_path):
  with open(os.path.join(generator, "results.json")) as f:
    trained = json.load(f)
  results = modes.evaluate(generator, _saved(generator))
  assert results["test_nll_per_point"] == pytest.approx(trained["test_nll_per_point"], rel=1e-5)
  (tmp_path / "bare.json").write_text(json.dumps([{"strokes": [[[0, 0], [1, 1], [2, 0]]]}]))
  unlabelled = modes.evaluate(generator, _saved(generator), str(tmp_path / "bare.json"))
  outside = modes.evaluate(generator, _saved(generator), _words_file(tmp_path / "bob.json", ["bat"]))  # 'b' unknown
  assert unlabelled["test_examples"] == outside["test_examples"] == 1
  assert np.isfinite(unlabelled["test_nll_per_point"]) and np.isfinite(outside["test_nll_per_point"])


def _every_other_point(points_Nx3):
  """The same strokes sampled at half the density (each stroke's ends kept)."""
  return strokes.from_strokes([np.concatenate([s[:-1][::2], s[-1:]]) for s in strokes.to_strokes(points_Nx3)])


def _twice_the_points(points_Nx3):
  """The same strokes with a point inserted halfway along every segment."""
  doubled = [np.insert(s, np.arange(1, len(s)), (s[:-1] + s[1:]) / 2, axis=0) for s in strokes.to_strokes(points_Nx3)]
  return strokes.from_strokes(doubled)


def test_own_ink_of_any_size_and_sampling_rate_reaches_the_model_as_the_training_ink_did(recognizer):
  config = _saved(recognizer)
  loaded = modes.load(recognizer, config, "recognize")
  rng = np.random.default_rng(5)
  originals = [strokes.Sample(hershey.synthesize(t, rng).points, t, "me") for t in ["lot", "cancel", "tea"]]
  scaled = lambda k: [s._replace(points=s.points * [k, k, 1]) for s in originals]
  denser = [s._replace(points=_twice_the_points(s.points)) for s in originals]
  sparser = [s._replace(points=_every_other_point(s.points)) for s in originals]
  assert [len(s.points) for s in denser] > [len(s.points) for s in originals] > [len(s.points) for s in sparser]
  seen = lambda samples: modes.normalised_examples(samples, config, loaded.normalizer)
  for variant in (scaled(0.05), scaled(40.0), denser):
    for original, same in zip(seen(originals), seen(variant)):
      np.testing.assert_allclose(same.points, original.points, atol=1e-3)
  for original, coarse in zip(seen(originals), seen(sparser)):
    assert abs(len(coarse.points) - len(original.points)) <= 0.1 * len(original.points)
    path, coarse_path = (np.cumsum(loaded.normalizer.invert(e.points)[:, :2], axis=0) for e in (original, coarse))
    off_path = np.min(np.linalg.norm(coarse_path[:, None] - path[None], axis=-1), axis=1)   # in heights
    # Half the points cut the corners of loops (and so the height the ink is scaled by, by ~3 %): the same path
    # within a few hundredths of the height on average.
    assert np.mean(off_path) < 0.08 and np.max(off_path) < 0.25, (np.mean(off_path), np.max(off_path))
  read = modes.transcribe(loaded, originals)
  assert len(set(read.beam)) > 1   # the words are told apart, so equal transcriptions are not all blank
  for variant in (scaled(0.05), scaled(40.0), denser):
    assert modes.transcribe(loaded, variant)[:2] == read[:2]
