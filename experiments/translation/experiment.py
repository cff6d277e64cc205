"""The translation experiment: parallel text -> tokenizers -> Seq2Seq -> generic train loop -> BLEU.

Workdir contents: `config.json` (the run's full config), `source.*`/`target.*` (the
vocabularies), `checkpoints/`, `metrics.jsonl`, `tensorboard/`, and after training
`results.json` (test BLEU/exact match, greedy and beam, BLEU by source length),
`samples.txt` and `attention_<i>.png`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import sacrebleu
from absl import logging

from rnn_jax import cells, decoding, train
from rnn_jax.data import parallel_batches, tokenizers
from experiments import command_line, progress
from experiments.translation import data, plots
from experiments.translation.model import ATTENTIONS, Seq2Seq


def validate(config) -> None:
  """Fails at start, naming the field, on values the experiment cannot use."""
  m = config.model
  cells.from_config(m)
  if m.attention not in ATTENTIONS:
    raise ValueError(f"config.model.attention must be one of {ATTENTIONS}, got {m.attention!r}")
  for field in ("embed_size", "encoder_size", "encoder_layers", "decoder_size", "decoder_layers",
                "attention_size", "output_size"):
    if m[field] <= 0:
      raise ValueError(f"config.model.{field} must be > 0, got {m[field]}")
  if not 0.0 <= m.dropout < 1.0:
    raise ValueError(f"config.model.dropout must be in [0, 1), got {m.dropout}")
  if not 0.0 <= config.label_smoothing < 1.0:
    raise ValueError(f"config.label_smoothing must be in [0, 1), got {config.label_smoothing}")
  if config.data.tokenizer not in ("word", "sentencepiece"):
    raise ValueError(f"config.data.tokenizer must be 'word' or 'sentencepiece', got {config.data.tokenizer!r}")
  for field in ("batch_size", "eval_batch_size"):
    if config.data[field] <= 0:
      raise ValueError(f"config.data.{field} must be > 0, got {config.data[field]}")
  if config.decode.beam_size < 1:
    raise ValueError(f"config.decode.beam_size must be >= 1, got {config.decode.beam_size}")
  for field in ("pad_to", "max_tokens"):
    if config.data[field] < 0:
      raise ValueError(f"config.data.{field} must be >= 0 (0: none), got {config.data[field]}")
  for field in ("source_vocab_size", "target_vocab_size"):
    all_words = config.data[field] == 0 and config.data.tokenizer == "word"
    if not (all_words or config.data[field] > len(tokenizers.SPECIALS)):
      raise ValueError(f"config.data.{field} must exceed the {len(tokenizers.SPECIALS)} special tokens (word "
                       f"tokenizer: or be 0, all words), got {config.data[field]}")
  if config.decode.max_length < 1:
    raise ValueError(f"config.decode.max_length must be >= 1, got {config.decode.max_length}")


def make_model(config, source_vocab: int, target_vocab: int) -> Seq2Seq:
  m = config.model
  return Seq2Seq(source_vocab=source_vocab, target_vocab=target_vocab, cell=m.cell, matmul_dtype=m.matmul_dtype,
                 embed_size=m.embed_size,
                 encoder_size=m.encoder_size, encoder_layers=m.encoder_layers, bidirectional=m.bidirectional,
                 decoder_size=m.decoder_size, decoder_layers=m.decoder_layers, attention=m.attention,
                 attention_size=m.attention_size, output_size=m.output_size, input_feeding=m.input_feeding,
                 reverse_source=m.reverse_source, dropout=m.dropout)


def describe_model(config) -> str:
  """E.g. "lstm encoder 1 x 128 bidirectional, decoder 1 x 256, bahdanau attention"."""
  m = config.model
  encoder = f"{m.cell} encoder {m.encoder_layers} x {m.encoder_size}{' bidirectional' if m.bidirectional else ''}"
  return f"{encoder}, decoder {m.decoder_layers} x {m.decoder_size}, {m.attention} attention"


def make_loss_fn(model: Seq2Seq, config):
  """The Task's loss: training optimises the (label-smoothed) loss; evaluation measures the plain NLL per token."""

  def loss_fn(params, model_state, batch, rng, train_mode):
    loss, metrics = model.loss(params, batch, rng, train_mode, config.label_smoothing if train_mode else 0.0)
    return loss, (metrics, model_state)

  return loss_fn


def synthetic_train_step(batch: int, length: int, variant: str, **overrides) -> train.SyntheticStep:
  """The train step of config `variant` (tatoeba or numbers) on random sentence pairs, source and target
  `length` tokens each, over the config's vocabulary sizes; `overrides` set fields of the config's `model`."""
  config = command_line.named_config("experiments.translation.configs", variant, overrides)
  source_vocab, target_vocab = config.data.source_vocab_size, config.data.target_vocab_size
  model = make_model(config, source_vocab, target_vocab)
  keys = jax.random.split(jax.random.PRNGKey(1), 2)
  target_Bx1T = jax.random.randint(keys[1], (batch, length + 1), 3, target_vocab)  # ids past PAD, BOS and EOS
  data = {"source": jax.random.randint(keys[0], (batch, length), 3, source_vocab),
          "source_lengths": jnp.full((batch,), length), "target_in": target_Bx1T[:, :-1],
          "target_out": target_Bx1T[:, 1:], "target_lengths": jnp.full((batch,), length)}
  state = train.create_train_state(model.init(jax.random.PRNGKey(0)), train.make_optimizer(config.optimizer))
  return train.SyntheticStep(f"translation/{variant}", make_loss_fn(model, config), state, data, 2 * batch * length,
                             describe_model(config))


# ----------------------------------------------------------------------------- decoding and scoring


@functools.partial(jax.jit, static_argnames=("model", "beam_size", "max_length"))
def decode_batch(model: Seq2Seq, params, source_BxS, source_lengths_B, *, beam_size: int, alpha, max_ratio,
                 max_offset, max_length: int) -> decoding.Decoded:
  """Best translation per source (greedy if `beam_size == 1`): tokens `[B, T]`, attention `[B, T, S]`."""
  state = model.encode(params, source_BxS, source_lengths_B)
  limits_B = decoding.relative_max_lengths(source_lengths_B, max_ratio, max_offset, max_length)
  common = dict(bos_id=tokenizers.BOS, eos_id=tokenizers.EOS, max_length=max_length, max_lengths=limits_B)
  if beam_size == 1:
    return decoding.greedy(model.step, params, state, **common)
  return decoding.best(decoding.beam_search(model.step, params, state, beam_size=beam_size, alpha=alpha, **common))


@dataclasses.dataclass
class Translation:
  source: str
  text: str              # detokenised output
  source_tokens: list    # token strings (plot labels)
  output_tokens: list    # token strings, EOS included
  attention: np.ndarray  # [len(output_tokens), len(source_tokens)]
  score: float


def translate(model: Seq2Seq, params, source_tok, target_tok, sentences, decode_cfg, beam_size: int | None = None,
              batch_size: int = 100, pad_to: int = 8, max_tokens: int = 0) -> list[Translation]:
  """Translations of raw source sentences, in order (beam size from `decode_cfg` unless given)."""
  beam_size = decode_cfg.beam_size if beam_size is None else beam_size
  ids = [source_tok.encode(s) for s in sentences]
  if max_tokens:
    ids = [x[:max_tokens] for x in ids]
  out: list = [None] * len(sentences)
  report, done = progress.Progress(f"translating sentences (beam {beam_size})", len(sentences)), 0
  for rows, batch in parallel_batches.eval_batches(ids, None, batch_size, pad_to):
    dec = jax.device_get(decode_batch(
        model, params, jnp.asarray(batch["source"]), jnp.asarray(batch["source_lengths"]), beam_size=beam_size,
        alpha=decode_cfg.alpha, max_ratio=decode_cfg.max_ratio, max_offset=decode_cfg.max_offset,
        max_length=decode_cfg.max_length))
    for j, row in enumerate(rows):
      n, s = int(dec.lengths[j]), len(ids[row])
      tokens = dec.tokens[j, :n]
      out[row] = Translation(
          source=sentences[row], text=target_tok.decode(tokens),
          source_tokens=[source_tok.id_to_token(int(t)) for t in ids[row]],
          output_tokens=[target_tok.id_to_token(int(t)) for t in tokens],
          attention=np.asarray(dec.attention[j, :n, :s]), score=float(dec.scores[j]))
    done += len(rows)
    report.update(done)
  return out


def bleu(hypotheses, references) -> float:
  """Corpus BLEU (sacrebleu defaults: 13a tokenisation, one reference per sentence) on detokenised text."""
  return sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score


def bleu_by_length(pairs, hypotheses, edges) -> list[dict]:
  """Corpus BLEU within source-length buckets `(prev_edge, edge]` (words), non-empty buckets only."""
  out, low = [], 0
  lengths = np.asarray([len(s.split()) for s, _ in pairs])
  for edge in edges:
    chosen = np.nonzero((lengths > low) & (lengths <= edge))[0]
    if len(chosen):
      out.append({"label": f"{low + 1}-{edge}", "count": int(len(chosen)),
                  "bleu": bleu([hypotheses[i] for i in chosen], [pairs[i][1] for i in chosen])})
    low = edge
  return out


def score(model, params, source_tok, target_tok, pairs, config, beam_size: int) -> tuple[dict, list]:
  """`(metrics, translations)` of held-out pairs: BLEU, exact match, BLEU by length, time."""
  start = time.perf_counter()
  translations = translate(model, params, source_tok, target_tok, [s for s, _ in pairs], config.decode, beam_size,
                           config.data.eval_batch_size, config.data.pad_to, config.data.max_tokens)
  hyps = [t.text for t in translations]
  refs = [t for _, t in pairs]
  metrics = {"bleu": bleu(hyps, refs), "exact_match": float(np.mean([h == r for h, r in zip(hyps, refs)])),
             "by_length": bleu_by_length(pairs, hyps, config.eval.length_buckets),
             "seconds": time.perf_counter() - start, "pairs": len(pairs)}
  return metrics, translations


# ----------------------------------------------------------------------------- building and training


@dataclasses.dataclass
class Experiment:
  task: train.Task
  model: Seq2Seq
  source_tok: tokenizers.Tokenizer
  target_tok: tokenizers.Tokenizer
  splits: dict


def build(config, workdir: str) -> Experiment:
  """Data, tokenizers, model and the Task for `train.train_loop`; fills `config.steps_per_epoch`."""
  validate(config)
  start = time.perf_counter()
  with train.distributed.primary_first("data"):  # process 0 prepares the data first
    splits = data.load_splits(config)
    source_tok, target_tok = data.tokenizers(config, splits, workdir)
  encoded = {split: parallel_batches.encode_pairs(pairs, source_tok, target_tok, config.data.max_tokens)
             for split, pairs in splits.items()}
  model = make_model(config, source_tok.vocab_size, target_tok.vocab_size)
  batches = parallel_batches.TrainBatches(*encoded["train"], config.data.batch_size, config.seed,
                                  pad_to_multiple=config.data.pad_to)
  config.steps_per_epoch = batches.steps_per_epoch
  logging.info("data %s: %s pairs; vocab %d -> %d (%s); %d steps/epoch; prepared in %.1fs",
               data.dataset_name(config), {k: len(v) for k, v in splits.items()}, source_tok.vocab_size,
               target_tok.vocab_size, config.data.tokenizer, batches.steps_per_epoch, time.perf_counter() - start)

  loss_fn = make_loss_fn(model, config)
  eval_step = train.make_eval_step(loss_fn)
  valid_pairs = splits["valid"][:config.eval.valid_examples]

  def evaluate(params):
    total, tokens = 0.0, 0
    valid_src, valid_tgt = encoded["valid"]
    for rows, batch in parallel_batches.eval_batches(valid_src, valid_tgt, config.data.eval_batch_size,
                                                     config.data.pad_to):
      keep = np.zeros(config.data.eval_batch_size, np.float32)
      keep[:len(rows)] = 1.0  # topped-up rows count nothing
      batch = dict(batch, target_lengths=(batch["target_lengths"] * keep).astype(np.int32))
      metrics, _ = eval_step(params, None, batch)
      n = int(batch["target_lengths"].sum())
      total, tokens = total + float(metrics["loss"]) * n, tokens + n
    out = {"valid_nll": total / max(tokens, 1)}
    if valid_pairs:
      greedy_metrics, _ = score(model, params, source_tok, target_tok, valid_pairs, config, beam_size=1)
      out.update(valid_bleu=greedy_metrics["bleu"], valid_exact_match=greedy_metrics["exact_match"])
    return out

  task = train.Task(init=lambda key: (model.init(key), None), loss_fn=loss_fn, train_batch=batches,
                    evaluate=evaluate, files=data.vocabulary_files(source_tok, target_tok),
                    tokens_per_batch=int(config.data.batch_size * np.mean([len(t) + 1 for t in encoded["train"][1]])))
  return Experiment(task, model, source_tok, target_tok, splits)


def final_evaluation(exp: Experiment, params, config, workdir: str, split: str = "test") -> dict:
  """Greedy and beam test figures, BLEU by length, samples and attention heatmaps, written to the workdir."""
  pairs = exp.splits[split]
  results = {"split": split, "dataset": data.dataset_name(config), "attention": config.model.attention}
  greedy_metrics, greedy_tr = score(exp.model, params, exp.source_tok, exp.target_tok, pairs, config, 1)
  results["greedy"] = greedy_metrics
  if config.decode.beam_size > 1:
    results["beam"], beam_tr = score(exp.model, params, exp.source_tok, exp.target_tok, pairs, config,
                                     config.decode.beam_size)
    results["beam"].update(beam_size=config.decode.beam_size, alpha=config.decode.alpha)
  else:
    beam_tr = greedy_tr
  if train.distributed.is_primary():  # every process decoded; one writes
    _write_figures(pairs, greedy_tr, beam_tr, config, workdir)
  summary = {k: round(v["bleu"], 2) for k, v in results.items() if isinstance(v, dict)}
  logging.info("%s BLEU %s; exact match greedy %.4f", split, summary, greedy_metrics["exact_match"])
  return results


def _write_figures(pairs, greedy_tr, beam_tr, config, workdir: str) -> None:
  """samples.txt and the attention heatmaps of `final_evaluation`."""
  with open(os.path.join(workdir, "samples.txt"), "w", encoding="utf-8") as f:
    for (source, reference), g, b in zip(pairs[:50], greedy_tr, beam_tr):
      f.write(f"source:    {source}\nreference: {reference}\ngreedy:    {g.text}\nbeam:      {b.text}\n\n")
  if config.model.attention != "none":
    for i, t in enumerate(beam_tr[:config.eval.heatmaps]):
      plots.attention_heatmap(t.attention, t.source_tokens, t.output_tokens,
                              os.path.join(workdir, f"attention_{i}.png"), title=t.text)


def run(config, workdir: str) -> dict:
  """Trains (resuming if `workdir` holds a checkpoint), then evaluates on test; returns the results."""
  exp = build(config, workdir)
  command_line.log_model_and_workdir(describe_model(config), exp.task.init, workdir)
  start = time.perf_counter()
  state = train.train_loop(exp.task, config, workdir)
  train_seconds = time.perf_counter() - start
  results = final_evaluation(exp, state.params, config, workdir)
  results["train_seconds_this_session"] = train_seconds
  results["num_steps"] = config.num_steps
  if train.distributed.is_primary():
    results = train.write_results(workdir, results)
  return results


def restore(workdir: str):
  """`(model, params, source_tok, target_tok, saved_config)` from a trained workdir (no data needed)."""
  saved = train.load_config(workdir)
  source_tok, target_tok = data.saved_tokenizers(workdir)
  model = make_model(saved, source_tok.vocab_size, target_tok.vocab_size)
  params = train.restore_params(workdir, saved, model.init(jax.random.PRNGKey(0)))
  return model, params, source_tok, target_tok, saved


def evaluate_checkpoint(config, workdir: str) -> dict:
  """Test figures of the checkpoint in `workdir` (data from `config`, model from the saved config)."""
  model, params, source_tok, target_tok, saved = restore(workdir)
  saved.decode, saved.eval = config.decode, config.eval
  splits = data.load_splits(saved)
  exp = Experiment(task=None, model=model, source_tok=source_tok, target_tok=target_tok, splits=splits)
  results = final_evaluation(exp, params, saved, workdir)
  if train.distributed.is_primary():  # beside the run's own results.json, which stays as training wrote it
    train.workdir.write_atomically(os.path.join(workdir, f"results_{data.dataset_name(saved)}.json"),
                                   json.dumps(results, indent=1))
  return results


def compare(workdirs: dict[str, str], path: str, decoder: str = "beam") -> dict:
  """BLEU-by-source-length curves of trained workdirs (`label -> workdir`) in one plot; returns them."""
  curves = {}
  for label, workdir in workdirs.items():
    with open(os.path.join(workdir, "results.json")) as f:
      results = json.load(f)
    curves[label] = results.get(decoder, results["greedy"])["by_length"]
  plots.bleu_by_length(curves, path)
  return curves
