"""A PyTorch reference for the character LM: the same corpus split, vocabulary, model and optimizer as rnn_jax's.

Reads the LM's own config (`--config`, `--config.<field>=...`), so both programs see the same characters:
`nn.LSTM` of `model.num_layers x model.hidden_size`, embeddings `model.embed_size`, dropout `model.dropout` on
the embeddings, between layers and before the softmax; Adam at `optimizer.learning_rate`, gradient norm clipped
to `optimizer.clip_norm`; `data.batch_size` streams x `data.bptt` steps, state carried across windows (gradient
stopped) and reset each epoch and where `data.reset_probability` draws a reset, as in rnn_jax; validation every
`eval_every` steps on `data.eval_batch_size` streams, each read from a zero state. Weights start as PyTorch
starts them (LSTM biases U(+-1/sqrt(H)) twice, so forget gates near half open), embeddings at
`model.embed_init_std`, and the forget-gate biases at `model.forget_bias` when it is not 1. Writes one JSON line per
validation to `--metrics` (`step`, `time`, `wall_s`, `loss`, `valid_loss`).
Needs the `torch` extra (`pip install -e .[torch]`).

  python -m experiments.language_modeling.torch_reference \
    --config=experiments/language_modeling/configs/torch_comparison.py --minutes=30 --metrics=runs/torch/metrics.jsonl

`experiments/language_modeling/side_by_side.py` runs it beside rnn_jax's LM and plots both.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from typing import Callable

import numpy as np
from absl import app, flags

from experiments import command_line
from experiments.language_modeling import lm
from rnn_jax.data import text

def import_torch():
  """torch, or a SystemExit naming the extra to install."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    sys.exit("the PyTorch reference needs torch: pip install -e .[torch]")
  return torch


def corpus_streams(config) -> tuple[int, np.ndarray, np.ndarray]:
  """`(vocab size, train streams [B, N], valid streams [B_eval, M])`, as rnn_jax's LM builds them."""
  d = config.data
  splits = text.load_text_splits(d.path, d.tfds_dir or None, tuple(d.fractions), download=d.download,
                                 encoding=d.encoding)
  vocab = text.Vocabulary.build(splits["train"], d.level, d.max_vocab)
  return (len(vocab), text.batchify(vocab.encode(splits["train"]), d.batch_size),
          text.batchify(vocab.encode(splits["valid"]), d.eval_batch_size))


def make_model(torch, config, vocab_size: int):
  """Embedding -> dropout -> nn.LSTM (dropout between layers) -> dropout -> linear."""
  m = config.model
  nn = torch.nn

  class CharLSTM(nn.Module):

    def __init__(self):
      super().__init__()
      self.embed = nn.Embedding(vocab_size, m.embed_size)  # N(0, 1), rnn_jax's embed_init_std=1
      if m.get("embed_init_std", 1.0) != 1.0:
        nn.init.normal_(self.embed.weight, std=m.embed_init_std)
      self.drop = nn.Dropout(m.dropout)
      self.lstm = nn.LSTM(m.embed_size, m.hidden_size, m.num_layers, batch_first=True,
                          dropout=m.dropout if m.num_layers > 1 else 0.0)
      self.out = nn.Linear(m.hidden_size, vocab_size)
      if m.get("forget_bias", 1.0) != 1.0:
        with torch.no_grad():
          for layer in range(m.num_layers):
            getattr(self.lstm, f"bias_ih_l{layer}")[m.hidden_size:2 * m.hidden_size] = m.forget_bias
            getattr(self.lstm, f"bias_hh_l{layer}")[m.hidden_size:2 * m.hidden_size] = 0.0

    def forward(self, tokens_BxT, state):
      h_BxTxH, state = self.lstm(self.drop(self.embed(tokens_BxT)), state)
      return self.out(self.drop(h_BxTxH)), state

  return CharLSTM()


def _window(torch, streams: np.ndarray, index: int, bptt: int):
  """`(inputs_BxT, targets_BxT)` of window `index` as int64 tensors."""
  return tuple(torch.from_numpy(np.asarray(a, np.int64)) for a in text.window(streams, index, bptt))


def validation_loss(torch, model, streams: np.ndarray, bptt: int) -> float:
  """Mean NLL (nats/token) over `[B, N]` streams, each from a zero state carried across windows."""
  model.eval()
  total, state = 0.0, None
  windows = text.num_windows(streams, bptt)
  with torch.no_grad():
    for index in range(windows):
      inputs, targets = _window(torch, streams, index, bptt)
      logits, state = model(inputs, state)
      total += float(torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten()))
  model.train()
  return total / windows


def _carried(torch, state, reset_B: np.ndarray):
  """The `(h, c)` state a window starts from: the last window's, gradient stopped (truncated BPTT), zero for the
  streams that restart (rnn_jax's `lm.stream_resets`, drawn alike)."""
  keep_1xBx1 = torch.from_numpy(~reset_B)[None, :, None]
  return tuple(s.detach() * keep_1xBx1 for s in state)


def _train_step(torch, model, optimizer, inputs, targets, state, clip_norm: float):
  """One Adam step on a window; returns `(loss, final state)`."""
  logits, state = model(inputs, state)
  loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
  optimizer.zero_grad()
  loss.backward()
  if clip_norm > 0:
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
  optimizer.step()
  return loss.item(), state


def synthetic_train_step(batch: int, length: int, variant: str = "zaremba_small", **overrides) -> Callable[[], float]:
  """The reference's train step for config `variant`, as `step() -> loss`, on random tokens: `batch` streams, a
  window of `length` tokens, as many tokens as `lm.synthetic_train_step` (the rnn_jax step the benchmark times it
  beside); the state is carried from one call to the next (gradient stopped), as in training. `overrides` set
  fields of the config's `model` (e.g. `hidden_size=64`)."""
  torch = import_torch()
  config = command_line.named_config("experiments.language_modeling.configs", variant, overrides)
  m = config.model
  if m.cell != "lstm" or m.proj_size or m.tied or m.residual or m.variational_dropout or m.cell_clip:
    raise ValueError(f"the PyTorch reference is a plain nn.LSTM: config {variant!r} needs cell 'lstm' without "
                     "proj_size, tied, residual, variational_dropout or cell_clip")
  vocab_size = lm.synthetic_vocab_size(config)
  torch.manual_seed(config.seed)
  model = make_model(torch, config, vocab_size)
  optimizer = torch.optim.Adam(model.parameters(), lr=config.optimizer.learning_rate)
  tokens_Bx1T = torch.randint(vocab_size, (batch, length + 1), generator=torch.Generator().manual_seed(1))
  holder = {"state": None}

  def step() -> float:
    state = holder["state"] and tuple(s.detach() for s in holder["state"])
    loss, holder["state"] = _train_step(torch, model, optimizer, tokens_Bx1T[:, :-1], tokens_Bx1T[:, 1:], state,
                                        config.optimizer.clip_norm)
    return loss

  return step


def train(config, metrics_path: str, minutes: float, threads: int = 1) -> list[dict]:
  """Trains for `config.num_steps` (0: `config.num_epochs` passes) or `minutes` of wall time; returns the records."""
  torch = import_torch()
  torch.set_num_threads(threads)
  torch.manual_seed(config.seed)
  vocab_size, streams, valid = corpus_streams(config)
  bptt = config.data.bptt
  steps_per_epoch = text.num_windows(streams, bptt)
  num_steps = config.num_steps or config.num_epochs * steps_per_epoch
  eval_every = config.eval_every if config.eval_every > 0 else steps_per_epoch
  model = make_model(torch, config, vocab_size)
  optimizer = torch.optim.Adam(model.parameters(), lr=config.optimizer.learning_rate)
  os.makedirs(os.path.dirname(os.path.abspath(metrics_path)), exist_ok=True)
  records, start, state = [], time.time(), None
  with open(metrics_path, "w") as out:
    for step in range(num_steps):
      index = step % steps_per_epoch
      state = None if index == 0 else _carried(torch, state, lm.stream_resets(
          step, steps_per_epoch, config.data.batch_size, config.data.reset_probability, config.seed))
      loss, state = _train_step(torch, model, optimizer, *_window(torch, streams, index, bptt), state,
                                config.optimizer.clip_norm)
      out_of_time = minutes > 0 and time.time() - start > 60 * minutes
      if (step + 1) % eval_every == 0 or step + 1 == num_steps or out_of_time:
        valid_loss, now = validation_loss(torch, model, valid, bptt), time.time()
        records.append({"step": step + 1, "time": now, "wall_s": now - start, "loss": loss, "valid_loss": valid_loss})
        out.write(json.dumps(records[-1]) + "\n")
        out.flush()
        print(f"step {step + 1}  loss {loss:.4f}  valid {valid_loss:.4f} nats/token  {(now - start) / 60:.1f} min",
              flush=True)
      if out_of_time:
        break
  return records


def define_flags() -> dict:
  """The command line's flags (defined only when run as a program, so that tests can import the module)."""
  return {"config": command_line.config_flag(__file__, "torch_comparison"),
          "metrics": flags.DEFINE_string("metrics", "runs/torch_reference/metrics.jsonl", "Where the JSON lines go."),
          "minutes": flags.DEFINE_float("minutes", 0.0, "Wall budget; 0: stop only at num_steps (or num_epochs)."),
          "threads": flags.DEFINE_integer("threads", 1, "torch.set_num_threads (one core, as under taskset -c N).")}


def main(argv, flag):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = flag["config"].value
  if config.model.cell != "lstm" or config.data.level != "char":
    sys.exit(f"the PyTorch reference is a character LSTM: config.model.cell={config.model.cell!r} and "
             f"config.data.level={config.data.level!r} must be 'lstm' and 'char'")
  if config.optimizer.name != "adam" or config.optimizer.schedule != "constant":
    sys.exit(f"the PyTorch reference trains with Adam at a constant rate: config.optimizer.name="
             f"{config.optimizer.name!r} and schedule={config.optimizer.schedule!r} must be 'adam' and 'constant'")
  minutes = flag["minutes"].value
  if not math.isfinite(minutes) or minutes < 0:
    sys.exit(f"--minutes must be >= 0, got {minutes}")
  train(config, flag["metrics"].value, minutes, flag["threads"].value)


if __name__ == "__main__":
  app.run(functools.partial(main, flag=define_flags()))
