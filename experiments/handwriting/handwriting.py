"""The handwriting experiment: stroke data -> Task for the generic train loop -> figures and pictures.

config.task = "recognition": BLSTM + CTC; reports CER (best path and prefix beam search)
  and sequence accuracy on the test split.
config.task = "generation": Graves' MDN generator, unconditional or (window_components > 0)
  conditional on the text; reports NLL per point on the test split and draws samples.
Each run writes `results.json` and its PNGs into the workdir.
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from rnn_jax import cells, ctc, train
from experiments import command_line, progress
from experiments.handwriting import input_pipeline, model, plots

TASKS = ("recognition", "generation")


def validate(config) -> None:
  """Fails at start, naming the field, on values the experiment cannot use."""
  if config.task not in TASKS:
    raise ValueError(f"config.task must be one of {TASKS}, got {config.task!r}")
  if config.data.source not in ("synthetic", "uji", "iam"):
    raise ValueError(f"config.data.source must be 'synthetic', 'uji' or 'iam', got {config.data.source!r}")
  cells.from_config(config.model)
  for field in ("hidden_size", "num_layers", "subsample", "num_mixtures"):
    if config.model[field] <= 0:
      raise ValueError(f"config.model.{field} must be > 0, got {config.model[field]}")
  if config.batch_size <= 0:
    raise ValueError(f"config.batch_size must be > 0, got {config.batch_size}")
  if not 0.0 <= config.model.dropout < 1.0:
    raise ValueError(f"config.model.dropout must be in [0, 1), got {config.model.dropout}")
  if config.model.window_components < 0:
    raise ValueError(f"config.model.window_components must be >= 0 (0: unconditional), "
                     f"got {config.model.window_components}")
  if config.data.pad_multiple <= 0:
    raise ValueError(f"config.data.pad_multiple must be > 0, got {config.data.pad_multiple}")
  synthetic = config.data.synthetic
  if not synthetic.charset or not 1 <= synthetic.min_length <= synthetic.max_length or synthetic.num_words < 1:
    raise ValueError("config.data.synthetic needs a charset, 1 <= min_length <= max_length and num_words >= 1, "
                     f"got {synthetic.charset!r}, {synthetic.min_length}, {synthetic.max_length}, "
                     f"{synthetic.num_words}")
  for field in ("beam_size", "num_pictures", "num_samples", "sample_steps", "steps_per_char"):
    if config.eval[field] <= 0:
      raise ValueError(f"config.eval.{field} must be > 0, got {config.eval[field]}")
  if not config.eval.biases:
    raise ValueError("config.eval.biases needs at least one sampling bias (e.g. (0.0,))")


DATA_FILE = "data.json"   # the run's alphabet and normaliser in its workdir: what --mode=recognize|write|eval read


def data_file_text(data) -> str:
  """The `DATA_FILE` of a run on `data`: `{"alphabet": chars, "mean": [dx, dy], "std": [dx, dy]}`."""
  return json.dumps({"alphabet": data.alphabet.chars, "mean": list(data.normalizer.mean),
                     "std": list(data.normalizer.std)})


def _batch_fn(data, config, keys):
  batch_at, per_epoch = input_pipeline.train_batches(
      data.splits["train"], len(data.alphabet.chars), data.max_label_length, config.batch_size, config.seed,
      config.data.pad_multiple, config.data.augment)
  return (lambda step: {k: v for k, v in batch_at(step).items() if k in keys}), per_epoch


def points_per_batch(data, config) -> int:
  """Pen points (the models' time steps) in a training batch on average: the "tokens" of tokens/s."""
  return int(config.batch_size * np.mean([len(sample.points) for sample in data.splits["train"]]))


def describe_model(config) -> str:
  """E.g. "2 x 128 bidirectional lstm + CTC" or "3 x 400 lstm + 20-Gaussian MDN, 10-Gaussian text window"."""
  m = config.model
  if config.task == "recognition":
    return f"{m.num_layers} x {m.hidden_size} bidirectional {m.cell} + CTC"
  window = f", {m.window_components}-Gaussian text window" if m.window_components else ""
  return f"{m.num_layers} x {m.hidden_size} {m.cell} + {m.num_mixtures}-Gaussian MDN{window}"


# ------------------------------------------------------------------ recognition


def recognizer_log_probs(model_config):
  """Jitted `(params, points_BxTx3, lengths_B) -> (log_probs_BxT'xV, frame_lengths_B)`."""
  @jax.jit
  def log_probs_fn(params, points, lengths):
    logits, frame_lengths = model.recognizer_logits(params, model_config, points, lengths)
    return jax.nn.log_softmax(logits), frame_lengths
  return log_probs_fn


def decode_batch(log_probs_fn, params, points_BxTx3, lengths_B, beam_size: int = 0, rows: int | None = None):
  """`(log_probs_RxT'xV, frame_lengths_R, ctc.BestPath, beam labels or None)` of the first `rows` (default all)
  sequences of a batch of pen points."""
  log_probs, lengths = jax.device_get(log_probs_fn(params, points_BxTx3, lengths_B))
  log_probs, lengths = log_probs[:rows], lengths[:rows]
  beam = ctc.beam_search(log_probs, lengths, beam_size) if beam_size else None
  return log_probs, lengths, ctc.best_path(log_probs, lengths), beam


def decode_examples(log_probs_fn, params, examples, config, alphabet_size: int, beam_size: int = 0,
                    what: str = "decoding sequences"):
  """`(best-path labels, beam labels or None, (log_probs_TxV, emission frames) per example)` in `examples`' order,
  decoded in length-sorted batches of `config.batch_size`."""
  hyps, beams, outputs = [None] * len(examples), [None] * len(examples), [None] * len(examples)
  max_label_length = max([len(e.labels) for e in examples] + [1])
  report, done = progress.Progress(what, len(examples)), 0
  for batch, _, idx in input_pipeline.eval_batches(examples, alphabet_size, max_label_length, config.batch_size,
                                                   config.data.pad_multiple):
    log_probs, lengths, best, beam = decode_batch(log_probs_fn, params, batch["points"], batch["lengths"],
                                                  beam_size, rows=len(idx))   # the rest is padding
    for k, i in enumerate(idx):
      hyps[i] = best.labels[k]
      outputs[i] = (log_probs[k, :lengths[k]], best.frames[k])
      if beam_size:
        beams[i] = beam[k]
    done += len(idx)
    report.update(done)
  return hyps, (beams if beam_size else None), outputs


def recognition_loss_fn(m):
  """The recognition Task's loss for `m` (config.model): mean CTC loss per sequence; metric: loss per char."""

  def loss_fn(params, model_state, batch, rng, is_training):
    dropout_rng = rng if (is_training and m.dropout > 0) else None
    logits, lengths = model.recognizer_logits(params, m, batch["points"], batch["lengths"], dropout_rng)
    loss_B = ctc.ctc_loss(logits, lengths, batch["labels"], batch["label_lengths"])
    return jnp.mean(loss_B), ({"loss_per_char": jnp.sum(loss_B) / jnp.sum(batch["label_lengths"])}, model_state)

  return loss_fn


def recognition_task(config, data):
  """`(Task, steps_per_epoch, decode_split)` for BLSTM-CTC recognition."""
  m = config.model
  loss_fn = recognition_loss_fn(m)
  log_probs_fn = recognizer_log_probs(m)

  def decode_split(params, split, beam_size=0):
    """`(refs, best-path hyps, beam hyps or None, per-example log-probs and frame lengths)` in split order."""
    examples = data.splits[split]
    hyps, beams, outputs = decode_examples(log_probs_fn, params, examples, config, len(data.alphabet.chars),
                                           beam_size, f"decoding {split} sequences")
    return [e.labels.tolist() for e in examples], hyps, beams, outputs

  def evaluate(params):
    refs, hyps, _, _ = decode_split(params, "valid")
    return {"valid_cer": ctc.error_rate(refs, hyps), "valid_seq_acc": ctc.sequence_accuracy(refs, hyps)}

  batch_fn, per_epoch = _batch_fn(data, config, ("points", "lengths", "labels", "label_lengths"))
  task = train.Task(init=lambda key: (model.init_recognizer(key, m, data.alphabet.num_classes), None),
                    loss_fn=loss_fn, train_batch=batch_fn, evaluate=evaluate,
                    tokens_per_batch=points_per_batch(data, config), files={DATA_FILE: data_file_text(data)})
  return task, per_epoch, decode_split


def _recognition_report(config, data, params, decode_split, workdir):
  start = time.perf_counter()
  refs, hyps, beams, outputs = decode_split(params, "test", beam_size=config.eval.beam_size)
  decode_s = time.perf_counter() - start
  results = {"test_cer_best_path": ctc.error_rate(refs, hyps), "test_cer_beam": ctc.error_rate(refs, beams),
             "test_seq_acc_best_path": ctc.sequence_accuracy(refs, hyps),
             "test_seq_acc_beam": ctc.sequence_accuracy(refs, beams), "test_examples": len(refs),
             "test_decode_seconds": decode_s}
  items = []
  for i in range(min(config.eval.num_pictures, len(refs))):
    log_probs, frames = outputs[i]
    example = data.splits["test"][i]
    items.append({"points": data.normalizer.invert(example.points), "probs_TxV": np.exp(log_probs),
                  "frames": frames, "decoded": data.alphabet.decode(hyps[i]), "target": example.text,
                  "subsample": config.model.subsample, "chars": data.alphabet.chars})
  results["pictures"] = [plots.alignment(os.path.join(workdir, "recognition.png"), items)]
  return results


# ------------------------------------------------------------------ generation


def batch_nll(params, m, alphabet_size: int, batch):
  """`(summed NLL, valid points)` of the generator `m` (config.model) on a batch; a conditional one
  (window_components > 0) reads `batch["text"]`."""
  if m.window_components > 0:
    params = model.bind_text(params, batch["text"])
  return model.generator_nll(params, m, alphabet_size, batch["points"], batch["lengths"])


def generation_loss_fn(m, alphabet_size: int):
  """The generation Task's loss for `m` (config.model): NLL per pen point."""

  def loss_fn(params, model_state, batch, rng, is_training):
    del rng, is_training
    total, count = batch_nll(params, m, alphabet_size, batch)
    return total / count, ({"nll_per_point": total / count}, model_state)

  return loss_fn


def generator_nll_fn(model_config, alphabet_size: int):
  """Jitted `(params, batch) -> (summed NLL, valid points)` of the generator `model_config` (config.model)."""
  return jax.jit(lambda params, batch: batch_nll(params, model_config, alphabet_size, batch))


def examples_nll(nll_fn, params, examples, config, alphabet_size: int, what: str = "NLL sequences") -> float:
  """NLL per point of the generator over `examples` (normalised points, labels for a conditional one)."""
  total, count, done = 0.0, 0, 0
  max_label_length = max([len(e.labels) for e in examples] + [1])
  report = progress.Progress(what, len(examples))
  for batch, weights, idx in input_pipeline.eval_batches(examples, alphabet_size, max_label_length,
                                                         config.batch_size, config.data.pad_multiple):
    batch["lengths"] = np.where(weights > 0, batch["lengths"], 0)   # padding rows count no points
    t, c = jax.device_get(nll_fn(params, batch))
    total, count, done = total + float(t), count + int(c), done + len(idx)
    report.update(done)
  return total / count


def raw_units_nll(nll_per_point: float, normalizer) -> float:
  """The NLL per point of raw offsets: the normalised one plus the Jacobian log(std_x * std_y)."""
  return nll_per_point + float(np.sum(np.log(normalizer.std)))


def generation_task(config, data):
  """`(Task, steps_per_epoch, split_nll)` for the MDN generator (conditional if window_components > 0)."""
  m = config.model
  alphabet_size = len(data.alphabet.chars)
  conditional = m.window_components > 0
  loss_fn = generation_loss_fn(m, alphabet_size)
  nll_fn = generator_nll_fn(m, alphabet_size)

  def split_nll(params, split):
    return examples_nll(nll_fn, params, data.splits[split], config, alphabet_size, f"{split} NLL sequences")

  def evaluate(params):
    return {"valid_nll_per_point": split_nll(params, "valid")}

  batch_fn, per_epoch = _batch_fn(data, config, ("points", "lengths", "text") if conditional else ("points", "lengths"))
  task = train.Task(init=lambda key: (model.init_generator(key, m, alphabet_size), None), loss_fn=loss_fn,
                    train_batch=batch_fn, evaluate=evaluate, tokens_per_batch=points_per_batch(data, config),
                    files={DATA_FILE: data_file_text(data)})
  return task, per_epoch, split_nll


def synthesis_end(phi_SxU: np.ndarray, text_length: int) -> int:
  """First step at which the window rests on the empty slot after the text (Graves' stopping rule)."""
  past = np.flatnonzero(np.argmax(phi_SxU, axis=-1) >= text_length)
  return int(past[0]) + 1 if len(past) else len(phi_SxU)


def generate(params, config, data, texts=None, biases=(0.0,), seed=0, num_steps=None):
  """Samples as raw-unit offsets: a list of dicts with `points`, `bias`, and for synthesis `text`, `phi_SxU`."""
  m = config.model
  alphabet_size = len(data.alphabet.chars)

  @functools.partial(jax.jit, static_argnums=(4, 5))
  def sampler(params, text, key, bias, batch_size, steps):
    if text is not None:
      params = model.bind_text(params, text)
    return model.sample(params, m, alphabet_size, key, batch_size, steps, bias)

  out = []
  for b_index, bias in enumerate(biases):
    key = jax.random.fold_in(jax.random.PRNGKey(seed), b_index)
    if texts is None:
      points, _ = jax.device_get(sampler(params, None, key, bias, config.eval.num_samples,
                                         num_steps or config.eval.sample_steps))
      out += [{"points": data.normalizer.invert(p), "bias": bias} for p in points]
      continue
    labels = [data.alphabet.encode(t) for t in texts]
    width = max(len(l) for l in labels)
    one_hot = np.zeros((len(texts), width + 1, alphabet_size), np.float32)
    for i, l in enumerate(labels):
      one_hot[i, np.arange(len(l)), l - 1] = 1.0
    steps = num_steps or config.eval.steps_per_char * (width + 1)
    points, phi = jax.device_get(sampler(params, one_hot, key, bias, len(texts), steps))
    for i, text in enumerate(texts):
      end = synthesis_end(phi[i], len(text))
      out.append({"points": data.normalizer.invert(points[i, :end]), "phi_SxU": phi[i, :end], "text": text,
                  "bias": bias, "title": f"{text!r}  bias {bias:g}"})
  return out


def _generation_report(config, data, params, split_nll, workdir):
  results = {"test_nll_per_point": split_nll(params, "test")}
  results["test_nll_per_point_raw_units"] = raw_units_nll(results["test_nll_per_point"], data.normalizer)
  biases = tuple(config.eval.biases)
  if config.model.window_components > 0:
    items = generate(params, config, data, texts=list(config.eval.texts), biases=biases, seed=config.seed)
    by_text = sorted(items, key=lambda it: list(config.eval.texts).index(it["text"]))   # rows: texts, columns: biases
    results["pictures"] = [plots.synthesis(os.path.join(workdir, "synthesis.png"), by_text, columns=len(biases))]
  else:
    items = generate(params, config, data, biases=biases, seed=config.seed)
    order = sorted(range(len(items)), key=lambda i: i % config.eval.num_samples)   # rows: samples, columns: biases
    by_sample = [items[i] for i in order]
    results["pictures"] = [plots.samples(os.path.join(workdir, "generation.png"),
                                         [(it["points"], f"bias {it['bias']:g}") for it in by_sample],
                                         columns=len(biases))]
  return results


# ------------------------------------------------------------------ entry point


class Trained(NamedTuple):
  data: input_pipeline.Data
  params: Any
  evaluator: Callable   # recognition: decode_split(params, split, beam_size); generation: split_nll(params, split)
  data_seconds: float
  train_seconds: float


def train_model(config, workdir: str, restore_finished: bool = True) -> Trained:
  """Loads the data and trains `config.num_steps` steps, resuming from `workdir`. A run finished there is
  restored, or with `restore_finished=False` raises `train.RunFinished` (which the command line reports)."""
  validate(config)
  start = time.perf_counter()
  data = input_pipeline.load(config.data)
  logging.info("data: %s; alphabet %r; train/valid/test %s", config.data.source, data.alphabet.chars,
               [len(data.splits[s]) for s in ("train", "valid", "test")])
  make_task = recognition_task if config.task == "recognition" else generation_task
  task, per_epoch, evaluator = make_task(config, data)
  command_line.log_model_and_workdir(describe_model(config), task.init, workdir)
  config.steps_per_epoch = per_epoch
  data_s = time.perf_counter() - start
  if restore_finished:
    params, _ = train.trained_params(task, config, workdir)
  else:
    params = train.train_loop(task, config, workdir).params
  return Trained(data, jax.device_get(params), evaluator, data_s, time.perf_counter() - start - data_s)


def run(config, workdir: str) -> dict:
  """Trains (resuming from `workdir`), evaluates on the test split, draws pictures; returns and saves results."""
  trained = train_model(config, workdir, restore_finished=False)
  report = _recognition_report if config.task == "recognition" else _generation_report
  return train.write_results(workdir, {
      "task": config.task, "source": config.data.source, "num_steps": config.num_steps,
      "data_seconds": trained.data_seconds, "train_seconds": trained.train_seconds,
      **report(config, trained.data, trained.params, trained.evaluator, workdir)})


# ------------------------------------------------------------------ benchmark

SYNTHETIC_VARIANTS = {"recognition": "recognize_synthetic", "generation": "generate"}  # variant -> its config


def synthetic_train_step(batch: int, length: int, variant: str, **overrides) -> train.SyntheticStep:
  """The train step of the recogniser (BLSTM-CTC, digits and blank, a label per 20 points) or of the
  unconditional generator (MDN) on `batch` random sequences of `length` pen points; `overrides` set fields
  of the variant's config's `model` (e.g. `hidden_size=64`)."""
  if variant not in SYNTHETIC_VARIANTS:
    raise ValueError(f"no handwriting variant {variant!r}; known: {', '.join(SYNTHETIC_VARIANTS)}")
  config = command_line.named_config("experiments.handwriting.configs", SYNTHETIC_VARIANTS[variant], overrides)
  m, keys = config.model, jax.random.split(jax.random.PRNGKey(1), 2)
  data = {"points": jax.random.normal(keys[0], (batch, length, 3)), "lengths": jnp.full((batch,), length)}
  if variant == "recognition":
    classes, label_length = 11, max(1, length // 20)
    data.update(labels=jax.random.randint(keys[1], (batch, label_length), 1, classes),
                label_lengths=jnp.full((batch,), label_length))
    loss_fn, params = recognition_loss_fn(m), model.init_recognizer(jax.random.PRNGKey(0), m, classes)
    decode = synthetic_test_decode(params, config, data["points"], data["lengths"])
  else:
    loss_fn, params = generation_loss_fn(m, 1), model.init_generator(jax.random.PRNGKey(0), m, 1)
    decode = None
  state = train.create_train_state(params, train.make_optimizer(config.optimizer))
  return train.SyntheticStep(f"handwriting/{variant}", loss_fn, state, data, batch * length, describe_model(config),
                             decode)


def synthetic_test_decode(params, config, points_BxTx3, lengths_B) -> train.SyntheticDecode:
  """The recogniser's test-split decoding as its run does it (best path and prefix beam search of width
  `config.eval.beam_size`), on as many copies of this batch as the split has batches."""
  log_probs_fn, batch = recognizer_log_probs(config.model), len(points_BxTx3)
  test_size = config.data.synthetic.sizes[2]
  beam_size = config.eval.beam_size

  def run():
    for _ in range(-(-test_size // batch)):
      decode_batch(log_probs_fn, params, points_BxTx3, lengths_B, beam_size)

  return train.SyntheticDecode(run, test_size, config.num_steps,
                               f"{test_size} sequences in batches of {batch}, best path and beam {beam_size}")
