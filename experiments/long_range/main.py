r"""Long-range dependency benchmarks: adding and copy tasks over a sweep of T.

  python -m experiments.long_range.main --out_dir=runs/long_range \
      --tasks=adding,copy --lengths=50,100,200,400 --steps=3000

Trains each variant (cell + initialisation + gradient clipping, see
`benchmark.VARIANTS`) on each task and T, then writes `results.json` (updated after
every run; runs already there with the same options are skipped, so an interrupted
sweep resumes), `results.md` (a table) and `error_vs_T.png` (final error against T,
with the memoryless baselines). Results: experiments/long_range/README.md.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from experiments import command_line
from experiments.long_range import benchmark

_TASKS = flags.DEFINE_list("tasks", list(benchmark.TASKS), "Tasks: adding, copy.")
_LENGTHS = flags.DEFINE_list("lengths", ["50", "100", "200", "400"], "Values of T.")
_VARIANTS = flags.DEFINE_list("variants", list(benchmark.VARIANTS), f"Variants among {sorted(benchmark.VARIANTS)}.")
_STEPS = flags.DEFINE_integer("steps", 3000, "Training steps per run.", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Training batch size.", lower_bound=1)
_HIDDEN_SIZE = flags.DEFINE_integer("hidden_size", 64, "Hidden units (all cells).", lower_bound=1)
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-2, "Adam learning rate.")
_EVAL_SIZE = flags.DEFINE_integer("eval_size", 1000, "Fresh sequences for the final error.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed for initialisation and data.")
_OUT_DIR = flags.DEFINE_string("out_dir", "runs/long_range", "Where results and the plot go.")


def main(argv):
  command_line.require_experiments_extra(("matplotlib",))
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  variants, tasks = benchmark.VARIANTS, benchmark.TASKS
  unknown = sorted(set(_VARIANTS.value) - set(variants)) + sorted(set(_TASKS.value) - set(tasks))
  if unknown or not (_TASKS.value and _VARIANTS.value):
    raise app.UsageError(f"--variants and --tasks take some of {sorted(variants)} and {tasks}; unknown: {unknown}")
  try:
    lengths = [int(length) for length in _LENGTHS.value]
  except ValueError:
    lengths = []
  if not lengths or min(lengths) < 1:
    raise app.UsageError(f"--lengths takes positive integers, got {_LENGTHS.value}")
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  results_path = os.path.join(_OUT_DIR.value, "results.json")
  results = {}
  if os.path.exists(results_path):  # the finished runs of an interrupted sweep
    try:
      with open(results_path) as f:
        results = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{results_path} is not valid JSON ({e}): move it away to start the sweep afresh") from None
  options = dict(steps=_STEPS.value, batch_size=_BATCH_SIZE.value, hidden_size=_HIDDEN_SIZE.value,
                 learning_rate=_LEARNING_RATE.value, eval_size=_EVAL_SIZE.value, seed=_SEED.value)
  for task in _TASKS.value:
    for length in lengths:
      for name in _VARIANTS.value:
        key = f"{task}/{name}/{length}"
        if key in results and results[key]["options"] == options:
          continue
        result = benchmark.train_one(task, length, variants[name], **options)
        results[key] = {"variant": name, "options": options, **result}
        print(f"{key}: error {result['error']} (baseline {result['baseline']:.4f}), "
              f"{result['seconds']:.0f} s", flush=True)
        with open(results_path + ".tmp", "w") as f:  # replaced whole, so an interruption cannot truncate it
          json.dump(results, f, indent=1)
        os.replace(results_path + ".tmp", results_path)
  benchmark.write_table(results, os.path.join(_OUT_DIR.value, "results.md"))
  benchmark.plot(results, os.path.join(_OUT_DIR.value, "error_vs_T.png"))
  with open(os.path.join(_OUT_DIR.value, "results.md")) as f:
    print(f.read())


if __name__ == "__main__":
  command_line.quiet_library_logs()
  app.run(main)
