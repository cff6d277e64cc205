"""Benchmark rows: one JSON-lines record per timed implementation (`make_row`), ratios between rows
timed together, the output file, and the markdown tables main.py prints.

  rows = [make_row(spec, t, r, ceiling, env) for t, r in zip(timers, results)]
  add_ratios(rows); write_jsonl(path, rows); print(format_table(rows))
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
from typing import Sequence

from experiments.benchmark.spec import Spec
from experiments.benchmark.timing import Result, Timer


def make_row(spec: Spec | None, timer: Timer, result: Result, ceiling_flops: float | None, env: dict,
             **fields) -> dict:
  """One JSON-lines record: the spec, the timings and the derived rates."""
  walls = sorted(result.walls)
  median = statistics.median(walls)
  row = {"impl": timer.name, **(dataclasses.asdict(spec) if spec else {}), **fields}
  tokens = row.get("tokens") or (spec.tokens if spec else None)
  row.update({
      "compile_s": timer.compile_s,
      "compile_s_median": statistics.median(timer.compile_times) if timer.compile_times else timer.compile_s,
      "compile_rounds": max(1, len(timer.compile_times)),
      "first_call_s": timer.first_call_s,
      "median_s": median,
      "min_s": walls[0],
      "max_s": walls[-1],
      "spread": (walls[-1] - walls[0]) / median,
      "cpu_s": statistics.median(result.cpus),
      "rounds": len(walls),
      "iters": result.iters,
      "tokens_per_s": tokens / median if tokens else None,
      "flops": timer.flops,
      "flops_per_s": timer.flops / median if timer.flops else None,
      "ceiling_flops_per_s": ceiling_flops,
      "fraction_of_ceiling": timer.flops / median / ceiling_flops if timer.flops and ceiling_flops else None,
      "load_avg_1m": os.getloadavg()[0],
      **timer.extra,
      **env,
  })
  return row


def add_ratios(rows: list[dict], reference: str = "rnn_jax") -> None:
  """Sets `speedup_of_<reference>` = this row's median / the first reference row's (and the same
  for process CPU time, `cpu_speedup_of_<reference>`), for rows timed together."""
  ref = [r for r in rows if r["impl"] == reference]
  if not ref:
    return
  for r in rows:
    r[f"speedup_of_{reference}"] = r["median_s"] / ref[0]["median_s"]
    r[f"cpu_speedup_of_{reference}"] = r["cpu_s"] / ref[0]["cpu_s"] if ref[0]["cpu_s"] > 0 else None


def write_jsonl(path: str, rows: Sequence[dict]) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "a") as f:
    for r in rows:
      f.write(json.dumps(r, default=str) + "\n")


_COLUMNS = [  # (header, key, format)
    ("impl", "impl", "{}"), ("cell", "cell", "{}"), ("options", "cell_options", "{}"), ("mode", "mode", "{}"),
    ("B", "batch", "{}"),
    ("T", "length", "{}"), ("H", "hidden", "{}"), ("L", "layers", "{}"), ("dir", "direction", "{}"),
    ("dtype", "dtype", "{}"), ("unroll", "unroll", "{}"), ("remat", "remat", "{}"), ("bwd", "backward", "{}"),
    ("compile s", "compile_s", "{:.2f}"), ("median ms", "median_s", "{:.1f}", 1e3),
    ("min ms", "min_s", "{:.1f}", 1e3), ("spread", "spread", "{:.0%}"), ("cpu ms", "cpu_s", "{:.1f}", 1e3),
    ("tok/s", "tokens_per_s", "{:.3g}"),
    ("GFLOP/s", "flops_per_s", "{:.1f}", 1e-9), ("ceil", "fraction_of_ceiling", "{:.0%}"),
    ("temp MB", "temp_bytes", "{:.1f}", 1e-6), ("x rnn_jax", "speedup_of_rnn_jax", "{:.2f}"),
    ("x rnn_jax cpu", "cpu_speedup_of_rnn_jax", "{:.2f}"),
    ("dev", "devices", "{}"), ("tok/s/dev", "tokens_per_s_per_device", "{:.3g}"), ("eff", "scaling_efficiency", "{:.0%}"),
    ("seqs", "sequences", "{}"), ("x step", "train_steps_per_decode", "{:.1f}"),
    ("of training", "share_of_training", "{:.1%}"),
]


def format_table(rows: Sequence[dict]) -> str:
  """A markdown table of the rows (columns with no values are left out)."""
  cols = [c for c in _COLUMNS if any(r.get(c[1]) not in (None, "") for r in rows)]
  def cell(r, c):
    v = r.get(c[1])
    if v is None:
      return "-"
    return c[2].format(v * c[3]) if len(c) > 3 else c[2].format(v)
  lines = ["| " + " | ".join(c[0] for c in cols) + " |", "|" + "---|" * len(cols)]
  lines += ["| " + " | ".join(cell(r, c) for c in cols) + " |" for r in rows]
  return "\n".join(lines)


def format_comparison(rows: Sequence[dict]) -> str:
  """One line per grid point: each implementation's median ms and its time / the first rnn_jax row's.

  rnn_jax rows are labelled by their runner options where these differ within the point.
  """
  points: dict = {}
  for r in rows:
    key = tuple(r.get(k) for k in ("cell", "mode", "batch", "hidden", "length", "layers", "direction", "dtype",
                                   "cell_options"))
    points.setdefault(key, []).append(r)
  def label(r, group):
    if r["impl"] != "rnn_jax":
      return r["impl"]
    varying = [k for k in ("backward", "hoist", "remat", "unroll")
               if len({g.get(k) for g in group if g["impl"] == "rnn_jax"}) > 1]
    return "rnn_jax" + "".join(f" {k}={r[k]}" for k in varying)
  lines = ["| cell | mode | BxHxT | " + "implementation: median ms (time / rnn_jax's) |", "|---|---|---|---|"]
  for (cell, mode, batch, hidden, length, *_, options), group in points.items():
    cell = f"{cell}({options})" if options else cell
    ref = next((g for g in group if g["impl"] == "rnn_jax"), group[0])
    cells = [f"{label(r, group)}: {1e3 * r['median_s']:.1f} ({r['median_s'] / ref['median_s']:.2f})" for r in group]
    lines.append(f"| {cell} | {mode} | {batch}x{hidden}x{length} | " + "; ".join(cells) + " |")
  return "\n".join(lines)


def train_step_ratios(rows: Sequence[dict]) -> list[str]:
  """One line per train step timed beside its PyTorch counterpart (`torch <entry>` rows): both tokens/s and
  rnn_jax's tokens/s over torch's."""
  mine = {r["impl"]: r for r in rows if r.get("mode") == "train_step"}
  return [f"{name}: rnn_jax {mine[name]['tokens_per_s']:.4g} tokens/s, torch {r['tokens_per_s']:.4g} tokens/s, "
          f"rnn_jax / torch {mine[name]['tokens_per_s'] / r['tokens_per_s']:.2f}"
          for r in rows if r.get("mode") == "train_step" and r["impl"].startswith("torch ")
          for name in [r["impl"].removeprefix("torch ")] if name in mine]
