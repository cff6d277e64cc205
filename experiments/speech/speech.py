"""The speech experiment: utterances -> log-mel features -> Task for the generic train loop -> digit error rates.

`run` trains (resuming from the workdir), scores the test split with best-path and prefix-beam decoding and
writes `results.json`; `recognize` prints the digits of WAV files with a trained workdir; `evaluate_folder`
scores a trained workdir on recordings named `{digits}_{speaker}_{index}.wav`.
Digit error rate = edit distance / reference length over the split; string accuracy = exact matches.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import cells, ctc, train
from experiments import command_line
from experiments.speech import augment, features, model, plots, utterances


def validate(config) -> None:
  """Fails at start, naming the field, on values the experiment cannot use."""
  data = config.data
  if data.source not in ("dtmf", "fsdd"):
    raise ValueError(f"config.data.source must be 'dtmf' or 'fsdd', got {data.source!r}")
  if data.source == "fsdd" and not data.path:
    raise ValueError("config.data.path: set it to fetched:fsdd or the Free Spoken Digit Dataset's recordings/ folder")
  if data.fsdd.split not in ("speakers", "indices"):
    raise ValueError(f"config.data.fsdd.split must be 'speakers' or 'indices', got {data.fsdd.split!r}")
  aug = config.augment
  if min(aug.speed) <= 0 or aug.freq_mask_width > config.features.num_mels:
    raise ValueError(f"config.augment: need speeds > 0 and freq_mask_width <= features.num_mels, got {aug}")
  if not 1 <= data.min_digits <= data.max_digits:
    raise ValueError(f"config.data needs 1 <= min_digits <= max_digits, got {data.min_digits}, {data.max_digits}")
  if len(data.sizes) != 3 or min(data.sizes) <= 0:
    raise ValueError(f"config.data.sizes must be three positive (train, valid, test) counts, got {data.sizes}")
  cells.from_config(config.model)
  for field in ("hidden_size", "num_layers", "subsample"):
    if config.model[field] <= 0:
      raise ValueError(f"config.model.{field} must be > 0, got {config.model[field]}")
  if not 0.0 <= config.model.dropout < 1.0:
    raise ValueError(f"config.model.dropout must be in [0, 1), got {config.model.dropout}")
  if config.features.utterance_norm not in features.UTTERANCE_NORMS:
    raise ValueError(f"config.features.utterance_norm must be one of {features.UTTERANCE_NORMS}, "
                     f"got {config.features.utterance_norm!r}")
  spec = features.spec_from_config(config.features)
  if spec.sample_rate != utterances.SAMPLE_RATE or not 0 < spec.hop <= spec.window or spec.num_mels <= 0:
    raise ValueError(f"config.features: need sample_rate {utterances.SAMPLE_RATE}, 0 < hop_ms <= window_ms and "
                     f"num_mels > 0, got {config.features}")
  for field, value in (("batch_size", config.batch_size), ("data.pad_frames", data.pad_frames),
                       ("data.stats_examples", data.stats_examples), ("eval.beam_size", config.eval.beam_size)):
    if value <= 0:
      raise ValueError(f"config.{field} must be > 0, got {value}")


def pad_waves(waves, spec: features.Spec, pad_frames: int):
  """`(waves_BxN, lengths_B)`: N holds the longest wave and a frame count that is a multiple of `pad_frames`."""
  lengths = np.asarray([len(w) for w in waves])
  covering = max(-(-(int(lengths.max()) - spec.window) // spec.hop) + 1, 1)   # frames reaching the last sample
  frames = -(-covering // pad_frames) * pad_frames
  out = np.zeros((len(waves), spec.window + (frames - 1) * spec.hop), np.float32)
  for row, wave in zip(out, waves):
    row[:len(wave)] = wave
  return out, lengths


def raw_features(waves, spec: features.Spec, pad_frames: int):
  """Un-normalised `(feats_BxTxF, frames_B)` of a list of waves."""
  waves_BxN, lengths_B = pad_waves(waves, spec, pad_frames)
  return features.features(jnp.asarray(waves_BxN), jnp.asarray(lengths_B), spec)


def make_batch(utts, spec, normalizer, config) -> dict:
  """Normalised features, frame counts, CTC labels (digit + 1) padded to `max_digits`, label lengths."""
  feats, frames = raw_features([u.wave for u in utts], spec, config.data.pad_frames)
  labels = np.zeros((len(utts), config.data.max_digits), np.int32)
  for row, u in zip(labels, utts):
    row[:len(u.digits)] = model.digits_to_labels(u.digits)
  return {"feats": normalizer.apply(feats, frames), "frames": frames, "labels": labels,
          "label_lengths": np.asarray([len(u.digits) for u in utts], np.int32)}


def fit_normalizer(source, spec, config) -> features.Normalizer:
  """Feature statistics of the first `data.stats_examples` training utterances."""
  utts = [source("train", i) for i in range(config.data.stats_examples)]
  feats, frames = raw_features([u.wave for u in utts], spec, config.data.pad_frames)
  return features.Normalizer.fit(np.asarray(feats), np.asarray(frames))


def log_probs_fn(config):
  @jax.jit
  def log_probs(params, feats, frames):
    logits, lengths = model.logits(params, config.model, feats, frames)
    return jax.nn.log_softmax(logits), lengths
  return log_probs


def decode(log_probs, params, batches, beam_size: int = 0):
  """`(best-path labels, beam labels or None)` per utterance, in batch order."""
  best, beams = [], []
  for batch in batches:
    lp, lengths = jax.device_get(log_probs(params, batch["feats"], batch["frames"]))
    best += ctc.best_path(lp, lengths).labels
    if beam_size:
      beams += ctc.beam_search(lp, lengths, beam_size)
  return best, (beams if beam_size else None)


def scores(refs, hyps, prefix: str) -> dict:
  return {f"{prefix}_der": ctc.error_rate(refs, hyps), f"{prefix}_string_acc": ctc.sequence_accuracy(refs, hyps)}


def _split_batches(source, split, count, spec, normalizer, config):
  utts = [source(split, i) for i in range(count)]
  size = config.batch_size
  batches = [make_batch(utts[i:i + size], spec, normalizer, config) for i in range(0, count, size)]
  return batches, [model.digits_to_labels(u.digits) for u in utts]


PICTURED_UTTERANCES = 2   # test utterances drawn with their CTC emissions


def write_pictures(workdir, config, source, spec, normalizer, log_probs, params, refs, hyps) -> list[str]:
  """`emissions.png` (the first test utterances) and `confusions.png` (the whole test split) in `workdir`."""
  utts = [source("test", i) for i in range(min(PICTURED_UTTERANCES, len(refs)))]
  raw, frames = raw_features([u.wave for u in utts], spec, config.data.pad_frames)
  lp, lengths = jax.device_get(log_probs(params, normalizer.apply(raw, frames), frames))
  items = [{"log_mel_TxM": np.asarray(raw)[k, :int(frames[k]), :spec.num_mels], "log_probs_TxV": lp[k, :lengths[k]],
            "subsample": config.model.subsample, "hop_ms": spec.hop_ms, "target": model.labels_to_digits(refs[k]),
            "decoded": model.labels_to_digits(hyps[k])} for k in range(len(utts))]
  digits = lambda labels: [model.labels_to_digits(l) for l in labels]
  return [plots.emissions(os.path.join(workdir, "emissions.png"), items),
          plots.confusions(os.path.join(workdir, "confusions.png"), digits(refs), digits(hyps),
                           f"test digit confusions, {len(refs)} utterances, beam search")]


NORMALIZER_FILE = "normalizer.json"  # the training split's feature statistics, in the workdir


def ctc_loss_fn(config):
  """The Task's loss: mean CTC loss per utterance (features masked in training where `config.augment` says);
  metric: loss per digit."""
  m = config.model
  masks = config.augment.freq_masks or config.augment.time_masks

  def loss_fn(params, model_state, batch, rng, is_training):
    feats = batch["feats"]
    if is_training and masks:
      rng, mask_key = jax.random.split(rng)
      feats = augment.mask_features(mask_key, feats, batch["frames"], config.features.num_mels, config.augment)
    dropout_rng = rng if (is_training and m.dropout > 0) else None
    logits, lengths = model.logits(params, m, feats, batch["frames"], dropout_rng)
    loss_B = ctc.ctc_loss(logits, lengths, batch["labels"], batch["label_lengths"])
    return jnp.mean(loss_B), ({"loss_per_digit": jnp.sum(loss_B) / jnp.sum(batch["label_lengths"])}, model_state)

  return loss_fn


def make_task(config, source, spec, normalizer):
  """`(Task, valid batches and refs, log_probs)` for BLSTM-CTC digit recognition."""
  m = config.model
  train_size, valid_size, _ = config.data.sizes
  loss_fn = ctc_loss_fn(config)

  def train_batch(step):
    first = step * config.batch_size
    utts = [source("train", (first + i) % train_size) for i in range(config.batch_size)]
    if augment.is_on(config.augment):
      utts = [u._replace(wave=augment.perturb_wave(u.wave, np.random.default_rng([config.seed, step, i]),
                                                   config.augment)) for i, u in enumerate(utts)]
    return make_batch(utts, spec, normalizer, config)

  valid_batches, valid_refs = _split_batches(source, "valid", valid_size, spec, normalizer, config)
  log_probs = log_probs_fn(config)

  def evaluate(params):
    return scores(valid_refs, decode(log_probs, params, valid_batches)[0], "valid")

  task = train.Task(init=lambda key: (model.init(key, m, spec.size), None), loss_fn=loss_fn,
                    train_batch=train_batch, evaluate=evaluate, tokens_per_batch=config.batch_size,
                    files={NORMALIZER_FILE: normalizer.to_json()})
  return task, log_probs


def synthetic_train_step(batch: int, length: int, variant: str = "dtmf", **overrides) -> train.SyntheticStep:
  """The BLSTM-CTC train step of config `variant` (dtmf or fsdd_connected) on `batch` random utterances of
  `length` feature frames, each labelled with as many digits (at most `data.max_digits`) as its subsampled
  frames can hold; `overrides` set fields of the config's `model` (e.g. `hidden_size=32`)."""
  config = command_line.named_config("experiments.speech.configs", variant, overrides)
  m, feature_size = config.model, features.spec_from_config(config.features).size
  digits = max(1, min(config.data.max_digits, length // (2 * m.subsample)))
  keys = jax.random.split(jax.random.PRNGKey(1), 2)
  data = {"feats": jax.random.normal(keys[0], (batch, length, feature_size)), "frames": jnp.full((batch,), length),
          "labels": jax.random.randint(keys[1], (batch, digits), 1, model.NUM_CLASSES),
          "label_lengths": jnp.full((batch,), digits)}
  state = train.create_train_state(model.init(jax.random.PRNGKey(0), m, feature_size),
                                   train.make_optimizer(config.optimizer))
  description = (f"{m.num_layers}x{m.hidden_size} {'bidirectional ' if m.bidirectional else ''}{m.cell} + CTC, "
                 f"subsample {m.subsample}")
  return train.SyntheticStep(f"speech/{variant}", ctc_loss_fn(config), state, data, batch * length, description)


def normalizer_path(workdir):
  return os.path.join(workdir, NORMALIZER_FILE)


def run(config, workdir: str) -> dict:
  """Trains (resuming from `workdir`), scores the test split; returns and saves results.json."""
  validate(config)
  start = time.perf_counter()
  spec = features.spec_from_config(config.features)
  source = utterances.make_source(config.data)
  normalizer = fit_normalizer(source, spec, config)
  config.steps_per_epoch = max(1, config.data.sizes[0] // config.batch_size)
  task, log_probs = make_task(config, source, spec, normalizer)
  data_s = time.perf_counter() - start
  params = jax.device_get(train.train_loop(task, config, workdir).params)
  train_s = time.perf_counter() - start - data_s
  test_batches, refs = _split_batches(source, "test", config.data.sizes[2], spec, normalizer, config)
  start = time.perf_counter()
  best, beams = decode(log_probs, params, test_batches, config.eval.beam_size)
  decode_s = time.perf_counter() - start
  pictures = write_pictures(workdir, config, source, spec, normalizer, log_probs, params, refs, beams)
  return train.write_results(workdir, {
      "source": config.data.source, "num_steps": config.num_steps, "data_seconds": data_s, "train_seconds": train_s,
      "test_decode_seconds": decode_s, "pictures": pictures, "test_utterances": len(refs),
      "test_digits": sum(map(len, refs)), **scores(refs, best, "test_best_path"), **scores(refs, beams, "test_beam")})
