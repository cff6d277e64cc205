"""A trained handwriting workdir as a tool: recognise a user's ink, write a user's text, score it on other data.

  recognize(workdir, config, "note.inkml", output="out/")     # prints "index<TAB>beam: ...<TAB>best path: ..."
  write(workdir, config, ["hello world"], bias=1.0, samples=2, output="out/")
  evaluate(workdir, config, input_path="alice.json")          # or the test split of config.data; results_<name>.json
                                                              # (a recogniser's CER, a generator's NLL per point)

The model, its alphabet and normaliser are the ones the workdir's run saved (config.json, data.json, the latest
checkpoint); `config` is the run's saved config with the command line's `--config.*` overrides applied
(`run_config`): decoding, sampling and data fields, never the model's.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple, Sequence

import jax
import numpy as np

from rnn_jax import ctc, train
from rnn_jax.data import ink, strokes
from rnn_jax.data.sources import DataError
from experiments.handwriting import handwriting, input_pipeline, model, plots

MODEL_FIELDS = ("task", "model", "optimizer", "data.height_normalize", "data.resample_step")  # fixed by training


def run_config(workdir: str, given, override_paths: Sequence[str]):
  """The config `workdir`'s run saved, with the fields named by `override_paths` (`--config.<path>`) taken from
  `given`; a ConfigError for a field that would change the trained model."""
  config = train.load_config(workdir)
  for path in override_paths:
    if any(path == field or path.startswith(field + ".") for field in MODEL_FIELDS):
      raise train.ConfigError(f"--config.{path}: the model and its preprocessing are the ones {workdir} was "
                              "trained with; drop the override (or train another workdir)")
    *parents, name = path.split(".")
    source, target = given, config
    for parent in parents:
      source, target = source[parent], target[parent]
    target[name] = source[name]
  return config


class Loaded(NamedTuple):
  """A recognition workdir ready to decode."""
  config: Any
  params: Any
  alphabet: input_pipeline.Alphabet
  normalizer: strokes.Normalizer
  log_probs: Any   # jitted (params, points, lengths) -> (log_probs_BxTxV, frame_lengths_B), compiled once per shape


def load_data_file(workdir: str) -> tuple[input_pipeline.Alphabet, strokes.Normalizer]:
  """The alphabet and normaliser a training run wrote to `workdir/data.json`."""
  path = os.path.join(workdir, handwriting.DATA_FILE)
  if not os.path.exists(path):
    raise train.NotTrainedError(f"no {handwriting.DATA_FILE} in {workdir}: run its training command with this "
                                "--workdir (a finished run only restores and writes it)")
  with open(path) as f:
    saved = json.load(f)
  return input_pipeline.Alphabet(saved["alphabet"]), strokes.Normalizer(tuple(saved["mean"]), tuple(saved["std"]))


def require_task(config, workdir: str, mode: str, synthesis: bool) -> None:
  """A RunError when `workdir` holds another kind of model than `mode` uses."""
  is_synthesis = config.task == "generation" and config.model.window_components > 0
  if (is_synthesis if synthesis else config.task == "recognition"):
    return
  wanted = "a synthesis model (configs/synthesize.py)" if synthesis else "a recogniser (configs/recognize_*.py)"
  raise train.RunError(f"--mode={mode} needs {wanted}; {workdir} holds a {handwriting.describe_model(config)}")


def restore(workdir: str, config, alphabet: input_pipeline.Alphabet) -> Any:
  """The params of `workdir`'s latest checkpoint."""
  key = jax.random.PRNGKey(0)
  if config.task == "recognition":
    template = model.init_recognizer(key, config.model, alphabet.num_classes)
  else:
    template = model.init_generator(key, config.model, len(alphabet.chars))
  return train.restore_params(workdir, config, template)


def load(workdir: str, config, mode: str, data_file: tuple | None = None) -> Loaded:
  """`workdir`'s recogniser; a RunError if it holds another model. `data_file`: what `load_data_file` returned,
  if already read."""
  require_task(config, workdir, mode, synthesis=False)
  alphabet, normalizer = data_file or load_data_file(workdir)
  return Loaded(config, restore(workdir, config, alphabet), alphabet, normalizer,
                handwriting.recognizer_log_probs(config.model))


# ------------------------------------------------------------------ recognition


class Transcripts(NamedTuple):
  best: list       # str per sample, best path
  beam: list       # str per sample, prefix beam search of width config.eval.beam_size
  pictures: list   # per sample the item plots.alignment draws (the best path at its emission frames)


def normalised_examples(samples: Sequence[strokes.Sample], config, normalizer: strokes.Normalizer,
                        encode=None) -> list[input_pipeline.Example]:
  """Raw samples preprocessed (`config.data`'s height normalisation and resampling) and normalised as in training;
  with `encode` (text -> class ids), labelled."""
  examples = []
  for s in samples:
    points = input_pipeline.preprocess(s.points, config.data.height_normalize, config.data.resample_step)
    labels = encode(s.text) if encode else np.zeros(0, np.int32)
    examples.append(input_pipeline.Example(normalizer.apply(points), labels, s.text, s.writer))
  return examples


def transcribe(loaded: Loaded, samples: Sequence[strokes.Sample]) -> Transcripts:
  """Preprocesses and normalises raw samples as in training and decodes them."""
  examples = normalised_examples(samples, loaded.config, loaded.normalizer)
  best, beam, outputs = handwriting.decode_examples(loaded.log_probs, loaded.params, examples, loaded.config,
                                                    len(loaded.alphabet.chars), loaded.config.eval.beam_size)
  decode = loaded.alphabet.decode
  pictures = [{"points": loaded.normalizer.invert(e.points), "probs_TxV": np.exp(log_probs), "frames": frames,
               "decoded": decode(b), "target": e.text, "subsample": loaded.config.model.subsample,
               "chars": loaded.alphabet.chars}
              for e, b, (log_probs, frames) in zip(examples, best, outputs)]   # frames are best path's
  return Transcripts([decode(h) for h in best], [decode(h) for h in beam], pictures)


def read_input(path: str, config, skip_bad: bool = False) -> list[strokes.Sample]:
  """The samples of an ink file; with `skip_bad`, bad ones are left out and counted on stdout, else the first
  stops the command with its one-line DataError."""
  skipped = [] if skip_bad else None
  samples = ink.read(path, y_up=bool(config.data.get("y_up", False)), skipped=skipped)
  if skipped:
    print(f"skipped {len(skipped)} bad samples of {path} (--skip_bad); the first: {skipped[0]}", flush=True)
  return samples


def outside_alphabet(text: str, alphabet: input_pipeline.Alphabet) -> str:
  """The characters of `text` that `alphabet` lacks, sorted ("" when none)."""
  return "".join(sorted(set(text) - set(alphabet.chars)))


def known_labels(samples: Sequence[strokes.Sample], alphabet: input_pipeline.Alphabet, source: str,
                 skip_bad: bool) -> list[strokes.Sample]:
  """`samples` whose labels are in `alphabet`; one with other characters stops the command in one line naming it
  or, with `skip_bad`, is left out and counted."""
  unknown = [(i, s) for i, s in enumerate(samples) if outside_alphabet(s.text, alphabet)]
  if unknown and not skip_bad:
    i, sample = unknown[0]
    raise DataError(f"{source}: sample {i} ({sample.text!r}) holds characters "
                    f"{outside_alphabet(sample.text, alphabet)!r} outside the model's alphabet "
                    f"{alphabet.chars!r} ({len(unknown)} such samples); drop them or pass --skip_bad")
  if unknown:
    print(f"skipped {len(unknown)} samples of {source} with labels outside the model's alphabet (--skip_bad)",
          flush=True)
  return [s for s in samples if not outside_alphabet(s.text, alphabet)]


def recognize(workdir: str, config, input_path: str, output: str = "", skip_bad: bool = False) -> list[str]:
  """Prints one line per sample of `input_path`, in file order: index, beam and best-path transcription (and the
  file's label when it has one); with `output`, draws each sample's CTC alignment to `output/sample_<i>.png`."""
  samples = read_input(input_path, config, skip_bad)
  loaded = load(workdir, config, "recognize")
  found = transcribe(loaded, samples)
  lines = []
  for i, (sample, beam, best) in enumerate(zip(samples, found.beam, found.best)):
    label = f"\tlabel: {sample.text}" if sample.text else ""
    lines.append(f"{i}\tbeam: {beam}\tbest path: {best}{label}")
    print(lines[-1], flush=True)
  if output:
    for i, item in enumerate(found.pictures):
      plots.alignment(os.path.join(output, f"sample_{i:03d}.png"), [item])
  return lines


def scores(refs: Sequence[str], hyps: Sequence[str], decoder: str) -> dict:
  """CER, word error rate and sequence accuracy of string transcriptions."""
  return {f"test_cer_{decoder}": ctc.error_rate(refs, hyps),
          f"test_wer_{decoder}": ctc.error_rate([r.split() for r in refs], [h.split() for h in hyps]),
          f"test_seq_acc_{decoder}": ctc.sequence_accuracy(refs, hyps)}


def eval_name(config, input_path: str) -> str:
  """`results_<name>.json`'s name: the input file's, else the data source (and its path's) name."""
  if input_path:
    return os.path.splitext(os.path.basename(input_path))[0]
  path = config.data.path.split(":")[-1]
  return config.data.source + (f"_{os.path.splitext(os.path.basename(path))[0]}" if path else "")


def recognition_figures(workdir: str, config, samples: Sequence[strokes.Sample], data_file: tuple) -> dict:
  """CER, word error rate and sequence accuracy (best path and beam) of `workdir`'s recogniser on `samples`;
  `data_file` is what `load_data_file` read."""
  loaded = load(workdir, config, "eval", data_file)
  found = transcribe(loaded, samples)
  refs = [s.text for s in samples]
  return {**scores(refs, found.best, "best_path"), **scores(refs, found.beam, "beam"),
          "errors": [{"index": i, "label": r, "beam": h} for i, (r, h) in enumerate(zip(refs, found.beam))
                     if r != h][:100]}


def generation_figures(workdir: str, config, samples: Sequence[strokes.Sample], data_file: tuple) -> dict:
  """NLL per point (normalised and raw units) of `workdir`'s generator on `samples`; a synthesis model reads
  each sample's text. `data_file` is what `load_data_file` read."""
  alphabet, normalizer = data_file
  conditional = config.model.window_components > 0
  params = restore(workdir, config, alphabet)
  examples = normalised_examples(samples, config, normalizer, alphabet.encode if conditional else None)
  nll = handwriting.examples_nll(handwriting.generator_nll_fn(config.model, len(alphabet.chars)), params, examples,
                                 config, len(alphabet.chars))
  return {"test_nll_per_point": nll, "test_nll_per_point_raw_units": handwriting.raw_units_nll(nll, normalizer)}


def evaluate(workdir: str, config, input_path: str = "", skip_bad: bool = False) -> dict:
  """The test figures of `workdir`'s model on `input_path` or, without it, on the test split of `config.data`:
  a recogniser's CER, word error rate and sequence accuracy, a generator's NLL per point. Written to
  `workdir/results_<name>.json` and returned."""
  source = input_path or config.data.source
  samples = read_input(input_path, config, skip_bad) if input_path else input_pipeline.raw_splits(config.data)["test"]
  recognition = config.task == "recognition"
  data_file = load_data_file(workdir)
  if recognition or config.model.window_components > 0:   # a synthesis model reads the labels
    samples = known_labels(samples, data_file[0], source, skip_bad)
  unlabelled = sum(not s.text for s in samples)
  if not samples or (unlabelled and (recognition or config.model.window_components > 0)):
    needs = "(recognize needs none)" if recognition else "(the synthesis model reads it)"
    raise DataError(f"{source}: {unlabelled} of {len(samples)} samples have no label; eval needs a transcription "
                    f"for every sample {needs}")
  figures = (recognition_figures(workdir, config, samples, data_file) if recognition
             else generation_figures(workdir, config, samples, data_file))
  results = {"data": os.path.abspath(input_path) if input_path else f"{config.data.source} test split",
             "test_examples": len(samples), **figures}
  path = os.path.join(workdir, f"results_{eval_name(config, input_path)}.json")
  with open(path, "w") as f:
    json.dump(results, f, indent=1)
  print(json.dumps({k: v for k, v in results.items() if k != "errors"}, indent=1))
  print(f"written to {path}")
  return results


# ------------------------------------------------------------------ synthesis


def texts_of(text: str) -> list[str]:
  """`--text`: the lines of a file of that name, else the text itself as one line."""
  if os.path.isfile(text):
    with open(text, encoding="utf-8") as f:
      lines = [line.strip() for line in f if line.strip()]
  else:
    lines = [text.strip()] if text.strip() else []
  if not lines:
    raise DataError("--text is empty: give a line to write, or a file of lines")
  return lines


def check_alphabet(texts: Sequence[str], alphabet: input_pipeline.Alphabet, what: str = "--text",
                   fix: str = "write with those characters only") -> None:
  unknown = outside_alphabet("".join(texts), alphabet)
  if unknown:
    raise DataError(f"{what}: characters {', '.join(map(repr, unknown))} are not in the model's alphabet "
                    f"{alphabet.chars!r}; {fix}")


def write(workdir: str, config, texts: Sequence[str], bias: float, samples: int, output: str) -> list[str]:
  """Writes each text `samples` times with `workdir`'s synthesis model into `output`: `sample_<i>.png` and
  `.svg` per sample, `strokes.json` (all samples, the strokes JSON `recognize` reads) and `window.png` (the
  attention window over the text); prints a line per sample and returns the files written."""
  require_task(config, workdir, "write", synthesis=True)
  alphabet, normalizer = load_data_file(workdir)
  check_alphabet(texts, alphabet)
  if samples < 1:
    raise DataError(f"--samples must be >= 1, got {samples}")
  params = restore(workdir, config, alphabet)
  data = input_pipeline.Data({}, alphabet, normalizer, 0)
  items = handwriting.generate(params, config, data, texts=[t for t in texts for _ in range(samples)],
                               biases=(bias,), seed=config.seed)
  written = [plots.synthesis(os.path.join(output, "window.png"), items)]
  for i, item in enumerate(items):
    for extension in ("png", "svg"):
      written.append(plots.samples(os.path.join(output, f"sample_{i:03d}.{extension}"),
                                   [(item["points"], item["title"])], columns=1))
    print(f"{i}\t{item['text']}\t{written[-2]}", flush=True)
  written.append(os.path.join(output, "strokes.json"))
  ink.write_strokes_json(written[-1], [strokes.Sample(it["points"], it["text"], f"bias {bias:g}") for it in items])
  print(f"strokes of all samples: {written[-1]}")
  return written
