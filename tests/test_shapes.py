"""Sequence tasks by shape (experiments/shapes): the generated data, and each small model learns its task."""

import jax
import numpy as np
import pytest

from rnn_jax import train
from experiments.shapes import examples as shapes
from experiments.shapes import model
from experiments.shapes.configs import default


def _config(*names, steps=300):
  config = default.get_config()
  config.examples = names
  config.num_steps = config.eval_every = config.checkpoint_every = steps
  return config


def test_tagging_data_labels_are_neighbourhood_maxima():
  batch = jax.device_get(shapes.tagging_batch(jax.random.key(0), batch=8))
  x, labels, lengths = batch["x"], batch["labels"], batch["lengths"]
  for row in range(8):
    n = lengths[row]
    expected = [max(x[row, max(t - 1, 0):t + 2][:n - max(t - 1, 0)]) for t in range(n)]
    np.testing.assert_array_equal(labels[row, :n], expected)


def test_decoding_data_is_an_arithmetic_series_then_eos():
  batch = jax.device_get(shapes.decoding_batch(jax.random.key(1), batch=8))
  vector, inputs, targets, lengths = batch["vector"], batch["inputs"], batch["targets"], batch["lengths"]
  for row in range(8):
    start, step, digits = np.argmax(vector[row, :10]), np.argmax(vector[row, 10:20]), np.argmax(vector[row, 20:]) + 3
    np.testing.assert_array_equal(targets[row, :digits], (start + step * np.arange(digits)) % 10)
    assert targets[row, digits] == model.EOS and lengths[row] == digits + 1
    np.testing.assert_array_equal(inputs[row, 1:], targets[row, :-1])


def test_bidirectional_tagger_learns_and_needs_both_directions(tmp_path):
  results = shapes.run(_config("tagger", "tagger_forward"), str(tmp_path))
  assert results[shapes.DESCRIPTIONS["tagger"]]["token_accuracy"] > 0.95
  assert results[shapes.DESCRIPTIONS["tagger_forward"]]["token_accuracy"] < 0.85  # cannot see x[t+1]
  for name in ("config.json", "results.json", "predictions.png"):
    assert (tmp_path / name).exists(), name
  for name in ("config.json", "metrics.jsonl", "tensorboard", "results.json", "checkpoints"):
    assert (tmp_path / "tagger" / name).exists(), name
  assert len([m for m in train.read_metrics(str(tmp_path / "tagger")) if "loss" in m]) == 300 // 100
  rescored = shapes.evaluate(_config("tagger"), str(tmp_path))  # from the checkpoints, on the same held-out set
  assert rescored == {k: {m: v[m] for m in rescored[k]} for k, v in results.items() if k in rescored}


def test_sequence_classifier_learns(tmp_path):
  result = shapes.train_example(_config("classifier"), "classifier", str(tmp_path))
  assert result["accuracy"] > 0.85 > result["majority_class"] + 0.3


def test_decoder_from_one_vector_learns(tmp_path):
  assert shapes.train_example(_config("decoder"), "decoder", str(tmp_path))["exact_match"] > 0.8


def test_synthetic_train_step_is_the_taggers_masked_cross_entropy():
  bench = shapes.synthetic_train_step(4, 12, "tagger", hidden_size=8)
  assert bench.tokens == 4 * 12 and bench.batch["x"].shape == (4, 12)
  logits = np.asarray(model.tagger_logits(8, True, bench.state.params, bench.batch["x"], bench.batch["lengths"]),
                      np.float64)
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  labels, lengths = np.asarray(bench.batch["labels"]), np.asarray(bench.batch["lengths"])
  picked = np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
  expected = -np.mean(np.concatenate([picked[i, :lengths[i]] for i in range(4)]))
  loss, _ = bench.loss_fn(bench.state.params, None, bench.batch, None, True)
  assert float(loss) == pytest.approx(expected, rel=1e-5)
  with pytest.raises(ValueError, match="only hidden_size"):
    shapes.synthetic_train_step(4, 12, "tagger", cell="gru")
