"""Long-range dependency benchmarks (adding, copy): variants, training, table and plot.

A variant is a cell with its options (initialisation) and a gradient-clipping norm;
`train_one` trains it on one task at one T with Adam and scores it on fresh data
against the memoryless baselines (adding: MSE 1/6; copy: cross-entropy
10 log 8 / (T + 20)). Launcher: experiments/long_range/main.py.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnn_jax import cells, scan, train
from rnn_jax.train import optim
from rnn_jax.data import tasks


@dataclasses.dataclass(frozen=True)
class Variant:
  """A cell with its options, and the global-norm gradient clip (0: none)."""
  cell: str
  options: tuple = ()
  clip_norm: float = 0.0


VARIANTS = {
    "tanh_normal": Variant("elman", (("recurrent_init", "normal"),)),
    "tanh_normal_clip": Variant("elman", (("recurrent_init", "normal"),), 1.0),
    "tanh_orthogonal_clip": Variant("elman", (("recurrent_init", "orthogonal"),), 1.0),
    "irnn_clip": Variant("irnn", (), 1.0),
    "lstm": Variant("lstm"),
    "lstm_clip": Variant("lstm", (), 1.0),
    "gru_clip": Variant("gru", (), 1.0),
}
TASKS = ("adding", "copy")
_COPY_VOCAB = 10  # blank, 8 symbols, delimiter


def baseline(task: str, length: int) -> float:
  """Memoryless score: adding MSE 1/6; copy cross-entropy per step 10 log 8 / (T + 20)."""
  return tasks.ADDING_BASELINE_MSE if task == "adding" else tasks.copy_baseline_cross_entropy(length)


def make_batch(task, key, batch_size, length):
  """`(x_BxTxI, targets)`: adding `[B, T, 2]` inputs and `[B]` sums; copy one-hot `[B, T, 10]` and `[B, T]`."""
  if task == "adding":
    return tasks.adding_problem(key, batch_size, length)
  x_BxL, y_BxL = tasks.copy_task(key, batch_size, length)
  return jax.nn.one_hot(x_BxL, _COPY_VOCAB), y_BxL


def init_params(cell, task: str, hidden_size: int, k_cell: jax.Array, k_out: jax.Array) -> dict:
  """The cell's params (`rnn`) and a linear readout (`w_out [H, O]`, `b_out [O]`) for `task`."""
  input_size, output_size = (2, 1) if task == "adding" else (_COPY_VOCAB, _COPY_VOCAB)
  return {"rnn": cell.init(k_cell, input_size, hidden_size),
          "w_out": jax.random.normal(k_out, (hidden_size, output_size)) / np.sqrt(hidden_size),
          "b_out": jnp.zeros((output_size,))}


def make_optimizer(variant: Variant, learning_rate: float = 1e-2) -> optax.GradientTransformation:
  """Adam, after the variant's global-norm clip if it has one."""
  return train.make_optimizer(optim.default_config(learning_rate=learning_rate, clip_norm=variant.clip_norm))


def task_loss(cell, task, params, x, y):
  """Adding: MSE of the last step's readout. Copy: cross-entropy per step and copied-symbol accuracy."""
  _, ys_BxTxH = scan.run(cell, params["rnn"], x)
  if task == "adding":
    prediction_B = ys_BxTxH[:, -1] @ params["w_out"][:, 0] + params["b_out"][0]
    return jnp.mean(jnp.square(prediction_B - y)), {}
  logits_BxTxV = ys_BxTxH @ params["w_out"] + params["b_out"][None, None, :]
  cross_entropy = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, y))
  accuracy = jnp.mean(jnp.argmax(logits_BxTxV[:, -10:], axis=-1) == y[:, -10:])
  return cross_entropy, {"copy_accuracy": accuracy}


def train_one(task: str, length: int, variant: Variant, *, steps=3000, batch_size=32, hidden_size=64,
              learning_rate=1e-2, eval_size=1000, seed=0) -> dict:
  """Trains one variant on one task; returns the final error on fresh data and its baseline."""
  cell = cells.get(variant.cell, **dict(variant.options))
  k_cell, k_out, k_data = jax.random.split(jax.random.key(seed), 3)
  params = init_params(cell, task, hidden_size, k_cell, k_out)
  optimizer = make_optimizer(variant, learning_rate)
  opt_state = optimizer.init(params)

  @jax.jit
  def train_step(params, opt_state, step):
    x, y = make_batch(task, jax.random.fold_in(k_data, step), batch_size, length)
    (loss, _), grads = jax.value_and_grad(lambda p: task_loss(cell, task, p, x, y), has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  start, losses = time.time(), []
  for step in range(steps):
    params, opt_state, loss = train_step(params, opt_state, step)
    losses.append(loss)
  losses = np.asarray(jax.device_get(losses))
  x, y = make_batch(task, jax.random.fold_in(k_data, 2**31 - 1), eval_size, length)  # a held-out stream
  error, extra = jax.jit(lambda p: task_loss(cell, task, p, x, y))(params)
  error = float(error)
  return {"task": task, "length": length, "error": error if np.isfinite(error) else None,
          "baseline": baseline(task, length), "diverged": not np.isfinite(error),
          "last_train_losses": losses[-100:].tolist()[::10], "seconds": time.time() - start,
          **{k: float(v) for k, v in extra.items()}}


def write_table(results: dict, path: str) -> None:
  """Markdown table: one row per (task, variant), one column per T, error / baseline as text."""
  lengths = sorted({r["length"] for r in results.values()})
  rows = sorted({(r["task"], r["variant"]) for r in results.values()})
  lines = ["| task | variant | " + " | ".join(f"T={t}" for t in lengths) + " |",
           "|---|---|" + "---|" * len(lengths)]
  for task, variant in rows:
    cells_ = []
    for t in lengths:
      r = results.get(f"{task}/{variant}/{t}")
      if r is None:
        cells_.append("")
      elif r["error"] is None:
        cells_.append("diverged")
      else:
        text = f"{r['error']:.4f}"
        if "copy_accuracy" in r:
          text += f" ({100 * r['copy_accuracy']:.0f} %)"
        cells_.append(text)
    lines.append(f"| {task} | {variant} | " + " | ".join(cells_) + " |")
  for task in sorted({r["task"] for r in results.values()}):
    lines.append(f"| {task} | *baseline* | " + " | ".join(f"{baseline(task, t):.4f}" for t in lengths) + " |")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")


def plot(results: dict, path: str) -> None:
  """Final error against T per variant, one panel per task, baselines dashed."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  task_names = sorted({r["task"] for r in results.values()})
  fig, axes = plt.subplots(1, len(task_names), figsize=(6 * len(task_names), 4.5), squeeze=False)
  for ax, task in zip(axes[0], task_names):
    runs = [r for r in results.values() if r["task"] == task]
    lengths = sorted({r["length"] for r in runs})
    for variant in sorted({r["variant"] for r in runs}):
      points = sorted((r["length"], r["error"]) for r in runs if r["variant"] == variant and r["error"] is not None)
      diverged = sorted(r["length"] for r in runs if r["variant"] == variant and r["error"] is None)
      label = variant + (f" (diverged at T={', '.join(map(str, diverged))})" if diverged else "")
      lengths_run, errors = zip(*points) if points else ((), ())
      ax.plot(lengths_run, errors, "o-", label=label)
    ax.plot(lengths, [baseline(task, t) for t in lengths], "k--", lw=2, label="memoryless baseline")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(lengths, [str(t) for t in lengths])
    ax.set_xticks([], minor=True)
    ax.set_xlabel("T")
    ax.set_ylabel("test MSE" if task == "adding" else "test cross-entropy per step (nats)")
    ax.set_title(f"{task} problem")
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
