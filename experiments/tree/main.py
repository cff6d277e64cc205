r"""Recursive networks vs a sequential LSTM on arithmetic expressions mod 10.

  python -m experiments.tree.main --out_dir=runs/tree

All models are trained on expressions with `train_leaves` digits and tested on fresh
expressions with up to `test_max_leaves` digits: longer expressions than in training,
and deep ones (depth 8 and more) that are rare in training. Writes results.json,
results.md and accuracy_vs_depth.png. Models and training: experiments/tree/arithmetic.py.
Results: experiments/tree/README.md.
"""

from __future__ import annotations

import json
import os

from absl import app, flags
import numpy as np

from experiments import command_line
from experiments.tree import arithmetic
from rnn_jax.data import expressions

_MODELS = flags.DEFINE_list("models", list(arithmetic.MODELS), f"Models among {arithmetic.MODELS}.")
_TREE_HIDDEN = flags.DEFINE_integer("tree_hidden", 64, "Hidden units of the tree models.", lower_bound=1)
_LSTM_HIDDEN = flags.DEFINE_integer("lstm_hidden", 128, "Hidden units of the sequential LSTM.", lower_bound=1)
_TRAIN_EXAMPLES = flags.DEFINE_integer("train_examples", 50_000, "Training expressions.", lower_bound=1)
_TRAIN_LEAVES = flags.DEFINE_list("train_leaves", ["2", "12"], "Min and max digits per training expression.")
_TEST_MAX_LEAVES = flags.DEFINE_integer("test_max_leaves", 24, "Max digits per test expression.")
_TEST_EXAMPLES = flags.DEFINE_integer("test_examples", 10_000, "Test expressions.", lower_bound=1)
_STEPS = flags.DEFINE_integer("steps", 6000, "Training steps.", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Batch size.", lower_bound=1)
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 2e-3, "Adam learning rate.")
_SUPERVISE = flags.DEFINE_enum("supervise", "all", ["all", "root"],
                                "Train on every subexpression's value (all) or the root's only.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed for data and initialisation.")
_OUT_DIR = flags.DEFINE_string("out_dir", "runs/tree", "Where results and the plot go.")


def main(argv):
  command_line.require_experiments_extra(("matplotlib",))
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  unknown = sorted(set(_MODELS.value) - set(arithmetic.MODELS))
  if unknown or not _MODELS.value:
    raise app.UsageError(f"--models takes some of {arithmetic.MODELS}; unknown: {unknown}")
  try:
    min_leaves, max_leaves = map(int, _TRAIN_LEAVES.value)
  except ValueError:
    raise app.UsageError(f"--train_leaves takes two integers (min,max), got {_TRAIN_LEAVES.value}") from None
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  train_data = expressions.arithmetic_trees(_SEED.value, _TRAIN_EXAMPLES.value, min_leaves, max_leaves)
  test_data = expressions.arithmetic_trees(_SEED.value + 1, _TEST_EXAMPLES.value, min_leaves, _TEST_MAX_LEAVES.value)
  results = []
  for name in _MODELS.value:
    hidden = _LSTM_HIDDEN.value if name not in arithmetic.COMPOSERS else _TREE_HIDDEN.value
    results.append(arithmetic.train_and_test(
        name, train_data, test_data, hidden_size=hidden, steps=_STEPS.value, batch_size=_BATCH_SIZE.value,
        learning_rate=_LEARNING_RATE.value, supervise=_SUPERVISE.value, seed=_SEED.value))
    print(f"{name}: test accuracy {results[-1]['accuracy']:.4f} ({results[-1]['seconds']:.0f} s)", flush=True)
  with open(os.path.join(_OUT_DIR.value, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  depths = sorted({d for r in results for d, n in r["count_by_depth"].items() if n >= 20})
  lines = ["| model | hidden | params | accuracy | " + " | ".join(f"depth {d}" for d in depths) + " |",
           "|---|---|---|---|" + "---|" * len(depths)]
  for r in results:
    lines.append(f"| {r['model']} | {r['hidden_size']} | {r['num_params']} | {100 * r['accuracy']:.1f} | "
                 + " | ".join(f"{100 * r['accuracy_by_depth'][d]:.0f}" for d in depths) + " |")
  lines.append("| *test trees* | | | | " + " | ".join(str(results[0]["count_by_depth"][d]) for d in depths) + " |")
  with open(os.path.join(_OUT_DIR.value, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  depth_99 = int(np.percentile(train_data["depth"], 99))
  arithmetic.plot(results, test_data, depth_99, os.path.join(_OUT_DIR.value, "accuracy_vs_depth.png"))
  print("\n".join(lines))


if __name__ == "__main__":
  command_line.quiet_library_logs()
  app.run(main)
