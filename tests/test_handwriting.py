"""Handwriting: stroke representation, Hershey synthesiser, TFDS builders, and small learning runs."""

import json
import logging
import os
import string

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import mdn, scan
from rnn_jax.data import hershey, strokes
from experiments import progress
from experiments.handwriting import handwriting, input_pipeline, model
from experiments.handwriting.configs import base as base_config
from experiments.handwriting.configs import recognize_synthetic
from tests.conftest import fetched_file


def _synth(seed, text="minimum"):
  return hershey.synthesize(text, np.random.default_rng(seed))


def test_synthesizer_deterministic_per_seed():
  a, b, c = _synth(7), _synth(7), _synth(8)
  np.testing.assert_array_equal(a.points, b.points)
  np.testing.assert_array_equal(a.char_index, b.char_index)
  assert a.points.shape != c.points.shape or not np.allclose(a.points, c.points)


@pytest.mark.parametrize("text", ["hello", "quick fox", "jiffy"])
def test_synthesized_strokes_decode_back_to_the_glyphs(text):
  sample = _synth(3, text)
  assert sample.points.dtype == np.float32 and sample.points.shape[1] == 3
  assert np.all(sample.points[0, :2] == 0) and sample.points[-1, 2] == 1
  # Every visible character is written, in order, each as a contiguous run of points.
  visible = [i for i, ch in enumerate(text) if ch != " "]
  runs = [int(k) for k in sample.char_index[np.flatnonzero(np.diff(sample.char_index, prepend=-1))]]
  assert runs == visible
  # Decoding the offsets back to absolute strokes gives glyphs laid out left to right.
  xy = np.concatenate(strokes.to_strokes(sample.points))
  centres = [xy[sample.char_index == k, 0].mean() for k in visible]
  assert np.all(np.diff(centres) > 0)
  # Pen lifts: at least one per word, and the word gap is a pen-up move to the right.
  assert sample.points[:, 2].sum() >= len(text.split())


def test_offsets_round_trip_and_resample():
  pieces = [np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]]), np.array([[10.0, 0.0], [10.0, 1.0]])]
  points = strokes.from_strokes(pieces)
  np.testing.assert_array_equal(points[:, 2], [0, 0, 1, 0, 1])
  back = strokes.to_strokes(points)
  for got, want in zip(back, pieces):
    np.testing.assert_allclose(got, want)
  resampled = strokes.to_strokes(strokes.resample(points, 2.5))
  np.testing.assert_allclose(resampled[0][[0, -1]], pieces[0][[0, -1]], atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(np.diff(resampled[0], axis=0), axis=1), 2.5, atol=1e-5)


def test_normalizer_uses_train_statistics():
  rng = np.random.default_rng(0)
  samples = [strokes.Sample(np.concatenate([rng.normal(3, 2, (20, 2)), np.zeros((20, 1))], 1).astype(np.float32),
                            "a", "w") for _ in range(5)]
  norm = strokes.Normalizer.fit(samples)
  applied = np.concatenate([norm.apply(s.points)[1:] for s in samples])
  np.testing.assert_allclose(applied[:, :2].mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(applied[:, :2].std(0), 1, atol=1e-5)
  np.testing.assert_allclose(norm.invert(norm.apply(samples[0].points)), samples[0].points, atol=1e-5)


def test_synthetic_builder_matches_synthesizer(tmp_path):
  splits = strokes.load_splits("synthetic", data_dir=str(tmp_path), sizes=(6, 2, 2), seed=5)
  assert [len(splits[s]) for s in strokes.SPLITS] == [6, 2, 2]
  for i, sample in enumerate(splits["valid"]):
    rng = np.random.default_rng([5, 1, i])
    text = hershey.random_text(rng, string.ascii_lowercase, 3, 7)
    assert sample.text == text
    np.testing.assert_array_equal(sample.points, hershey.synthesize(text, rng).points)


def test_uji_builder_is_writer_disjoint(tmp_path):
  path = fetched_file("uji_pen_digits")
  splits = strokes.load_splits("uji", path=path, data_dir=str(tmp_path))
  writers = {s: {x.writer for x in splits[s]} for s in strokes.SPLITS}
  assert [len(writers[s]) for s in strokes.SPLITS] == [42, 6, 12]
  assert not (writers["train"] & writers["test"]) and not (writers["train"] & writers["valid"])
  assert sum(len(v) for v in splits.values()) == 1200
  assert sorted({x.text for x in splits["test"]}) == list("0123456789")
  assert all(x.points[-1, 2] == 1 for x in splits["test"])


_STROKE_XML = """<?xml version="1.0" encoding="ISO-8859-1"?>
<WhiteboardCaptureSession>
  <WhiteboardDescription><SensorLocation corner="top_left"/></WhiteboardDescription>
  <StrokeSet>
{strokes}
  </StrokeSet>
</WhiteboardCaptureSession>
"""


def _write_iam_fixture(root):
  """Two forms, two lines each, in the IAM-OnDB layout; a01-000u in trainset.txt, b02-001x in testset_v.txt."""
  lines = {"a01-000u": ["A MOVE to stop", "Mr. Gaitskell"], "b02-001x": ["nominating any", "more Labour"]}
  for form, texts in lines.items():
    group, prefix = form[:3], form[:7]
    os.makedirs(root / "ascii" / group / prefix, exist_ok=True)
    os.makedirs(root / "lineStrokes" / group / prefix, exist_ok=True)
    header = f"Data file: {form}.txt\nOCR:\n\n" + "\n".join(t.upper() for t in texts) + "\n\nCSR:\n\n"
    (root / "ascii" / group / prefix / f"{form}.txt").write_text(header + "\n".join(texts) + "\n")
    for n, _ in enumerate(texts, 1):
      # Three strokes: 3, 2 and 4 points (one repeated point, dropped by the parser).
      groups = [[(100, 500), (110, 490), (120, 480)], [(130, 500), (130, 500), (140, 470)],
                [(150, 500), (160, 510), (170, 500), (180 + n, 490)]]
      xml = "\n".join("    <Stroke colour=\"black\" start_time=\"0\" end_time=\"1\">" +
                      "".join(f"<Point x=\"{x}\" y=\"{y}\" time=\"0\"/>" for x, y in g) + "</Stroke>" for g in groups)
      (root / "lineStrokes" / group / prefix / f"{form}-{n:02d}.xml").write_text(_STROKE_XML.format(strokes=xml))
  (root / "trainset.txt").write_text("a01-000u\n")
  (root / "testset_v.txt").write_text("b02-001x\n")


def test_iam_fixture_parses(tmp_path):
  root = tmp_path / "iam"
  _write_iam_fixture(root)
  points = strokes.parse_iam_strokes(str(root / "lineStrokes" / "a01" / "a01-000" / "a01-000u-02.xml"))
  assert points.shape == (9, 3)
  np.testing.assert_array_equal(points[:, 2], [0, 0, 1, 0, 1, 0, 0, 0, 1])
  first = strokes.to_strokes(points)[0]
  np.testing.assert_allclose(first - first[0], [[0, 0], [10, 10], [20, 20]])   # y flipped: up is positive
  splits = strokes.load_splits("iam", path=str(root), data_dir=str(tmp_path / "tfds"))
  assert sorted(s.text for s in splits["train"]) == ["A MOVE to stop", "Mr. Gaitskell"]
  assert sorted(s.text for s in splits["valid"]) == ["more Labour", "nominating any"]
  assert splits["test"] == []
  assert {s.writer for s in splits["train"]} == {"a01-000u"}


def test_graves_stack_window_reads_text_and_moves_forward():
  cfg = base_config.base_config().model
  cfg.hidden_size, cfg.num_layers, cfg.window_components, cfg.num_mixtures = 8, 2, 3, 2
  params = model.init_generator(jax.random.PRNGKey(0), cfg, alphabet_size=5)
  text = jnp.asarray(np.eye(5, dtype=np.float32)[[[0, 1, 2, 3], [4, 4, 0, 0]]])
  points = jax.random.normal(jax.random.PRNGKey(1), (2, 12, 3))
  bound = model.bind_text(params, text)
  y, phi = model.generator_outputs(bound, cfg, 5, points, jnp.array([12, 7]))
  assert y.shape == (2, 12, mdn.num_outputs(2)) and phi.shape == (2, 12, 4)
  assert np.all(np.asarray(phi[1, 7:]) == 0)   # padded steps output zeros
  # The window is a function of the text: changing a character changes the outputs after it is read.
  y2, _ = model.generator_outputs(model.bind_text(params, text.at[0, 0].set(jnp.eye(5)[4])), cfg, 5, points,
                                  jnp.array([12, 7]))
  assert not np.allclose(np.asarray(y[0]), np.asarray(y2[0]))
  np.testing.assert_allclose(np.asarray(y[1]), np.asarray(y2[1]))
  # Step by step through the same cell gives the teacher-forced outputs.
  stack = model.make_generator(cfg, 5)
  carry = stack.initial_carry(bound["rnn"], (2,))
  _, ys = scan.run(stack, bound["rnn"], points[:, :3], initial_carry=carry)
  step_carry, step_ys, kappas = carry, [], [np.asarray(carry[1])]
  for t in range(3):
    step_carry, out = stack.step(bound["rnn"], step_carry, points[:, t])
    step_ys.append(out)
    kappas.append(np.asarray(step_carry[1]))
  np.testing.assert_allclose(np.stack(step_ys, 1), np.asarray(ys), rtol=1e-5, atol=1e-6)
  assert np.all(np.diff(np.stack(kappas), axis=0) > 0)   # the window only moves forward


def _tiny_config(task, tmp_path):
  c = base_config.base_config()
  c.task = task
  c.data.tfds_dir = str(tmp_path / "tfds")
  c.data.synthetic.sizes = (600, 48, 48)
  c.data.synthetic.charset = "acelnot"
  c.data.synthetic.min_length, c.data.synthetic.max_length = 2, 3
  c.data.pad_multiple = 96   # one compiled shape
  c.batch_size = 24
  c.log_every = c.checkpoint_every = 50
  c.eval.num_pictures, c.eval.beam_size = 2, 4
  return c


@pytest.mark.slow
def test_small_recognizer_lowers_cer_and_draws(tmp_path):
  c = _tiny_config("recognition", tmp_path)
  c.model.hidden_size, c.model.num_layers, c.model.subsample = 48, 1, 3
  c.optimizer.learning_rate = 1e-2
  c.num_steps, c.eval_every = 350, 350
  results = handwriting.run(c, str(tmp_path / "rec"))
  # An untrained recogniser emits blanks (CER 1.0); this one reads most characters.
  assert results["test_cer_best_path"] < 0.35, results
  assert results["test_cer_beam"] <= results["test_cer_best_path"] + 0.02
  assert os.path.getsize(results["pictures"][0]) > 10_000
  with open(tmp_path / "rec" / "results.json") as f:
    assert json.load(f)["test_examples"] == 48


@pytest.mark.slow
def test_small_synthesis_model_learns_and_draws(tmp_path):
  c = _tiny_config("generation", tmp_path)
  c.model.hidden_size, c.model.num_layers, c.model.num_mixtures, c.model.window_components = 24, 2, 3, 2
  c.optimizer.learning_rate = 1e-2
  c.num_steps, c.eval_every = 60, 60
  c.eval.texts, c.eval.biases, c.eval.steps_per_char = ("cat",), (0.0, 5.0), 20
  results = handwriting.run(c, str(tmp_path / "gen"))
  history = [h["valid_nll_per_point"] for h in results["history"]]
  data = input_pipeline.load(c.data)
  untrained = model.init_generator(jax.random.PRNGKey(0), c.model, len(data.alphabet.chars))
  batch = next(input_pipeline.eval_batches(data.splits["valid"], len(data.alphabet.chars), data.max_label_length,
                                           24, 96))[0]
  total, count = model.generator_nll(model.bind_text(untrained, batch["text"]), c.model, len(data.alphabet.chars),
                                     batch["points"], batch["lengths"])
  assert history[-1] < float(total / count) - 0.5, (history, float(total / count))
  assert np.isfinite(results["test_nll_per_point"])
  assert os.path.getsize(results["pictures"][0]) > 10_000


def test_final_decoding_logs_its_progress_with_an_eta(tmp_path, monkeypatch, caplog):
  monkeypatch.setattr(progress, "EVERY_S", 0.0)  # a line per batch: the small setting decodes in seconds
  c = _tiny_config("recognition", tmp_path)
  c.model.hidden_size, c.model.num_layers = 16, 1
  c.num_steps = c.eval_every = 2
  with caplog.at_level(logging.INFO, logger="absl"):
    handwriting.run(c, str(tmp_path / "rec"))
  lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("decoding test sequences: ")]
  assert [line.split(",")[0] for line in lines] == ["decoding test sequences: 24/48", "decoding test sequences: 48/48"]
  assert all("ETA" in line for line in lines)


def test_synthesis_end_rule():
  phi = np.zeros((6, 4))
  phi[[0, 1, 2, 3, 4, 5], [0, 0, 1, 2, 3, 3]] = 1.0
  assert handwriting.synthesis_end(phi, 3) == 5
  assert handwriting.synthesis_end(phi[:4], 3) == 4


@pytest.mark.parametrize("field,value,message", [
    ("task", "drawing", "config.task must be one of"),
    ("model.dropout", 1.5, r"config.model.dropout must be in \[0, 1\)"),
    ("model.window_components", -1, "config.model.window_components must be >= 0"),
    ("data.pad_multiple", 0, "config.data.pad_multiple must be > 0"),
    ("data.synthetic.charset", "", "config.data.synthetic needs a charset"),
    ("data.synthetic.max_length", 2, "1 <= min_length <= max_length"),
    ("eval.beam_size", 0, "config.eval.beam_size must be > 0"),
    ("eval.num_pictures", 0, "config.eval.num_pictures must be > 0"),
    ("eval.biases", (), "config.eval.biases needs at least one sampling bias"),
])
def test_invalid_config_values_are_named_before_training(field, value, message):
  config = recognize_synthetic.get_config()
  *sections, name = field.split(".")
  node = config
  for section in sections:
    node = node[section]
  node[name] = value
  with pytest.raises(ValueError, match=message):
    handwriting.validate(config)
