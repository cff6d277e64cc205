"""What main.py runs for the cell grid: the grid, its timing in groups, the remat summary.

`run_grid` returns the rows it measured (dicts, one per implementation and grid point; see
`report.make_row` for the fields). Whole train steps are in `experiment_steps`.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Callable, Sequence

from experiments.benchmark import environment, implementations, report, timing
from experiments.benchmark.spec import Spec


def grid(cells: Sequence[str], modes: Sequence[str], shapes: Sequence[tuple[int, int, int]],
         **lists: Sequence) -> list[Spec]:
  """The cartesian product of the options; `shapes` are `(batch, hidden, length)` triples."""
  names = sorted(lists)
  specs = []
  for cell, mode, (batch, hidden, length) in itertools.product(cells, modes, shapes):
    for values in itertools.product(*(lists[n] for n in names)):
      specs.append(Spec(cell=cell, mode=mode, batch=batch, hidden=hidden, length=length,
                        **dict(zip(names, values))))
  return specs


def parse_shapes(shapes: Sequence[str]) -> list[tuple[int, int, int]]:
  """`"32x256x100"` -> `(batch 32, hidden 256, length 100)`; batch and length at least 1 (the hidden
  size may be 0 where it is not used: train steps take their config's)."""
  out = []
  for s in shapes:
    parts = s.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or int(parts[0]) < 1 or int(parts[2]) < 1:
      raise ValueError(f"a shape is BxHxT (batch x hidden x length, batch and length >= 1), e.g. 32x256x100; "
                       f"got {s!r}")
    out.append(tuple(int(p) for p in parts))
  return out


def check_known(names: Sequence[str], known) -> None:
  """ValueError listing the `names` not in `known` (comparisons)."""
  unknown = [n for n in names if n not in known]
  if unknown:
    raise ValueError(f"unknown {unknown}; known: {sorted(known)}")


_RUNNER_OPTIONS = ("unroll", "remat", "hoist", "backward")


def _groups(specs: Sequence[Spec]) -> list[list[Spec]]:
  """Specs that differ only in runner options, in order: they are timed together."""
  groups: dict = {}
  for spec in specs:
    key = dataclasses.replace(spec, **{k: getattr(Spec, k) for k in _RUNNER_OPTIONS})
    groups.setdefault(key, []).append(spec)
  return list(groups.values())


def run_grid(specs: Sequence[Spec], compare: Sequence[str] = (), rounds: int = 5, warmup: int = 1,
             min_round_s: float = 0.2, compile_rounds: int = 1, peak_flops: float = 0.0, ceiling_size: int = 2048,
             log: Callable[[str], None] = print, on_rows: Callable[[list[dict]], None] = lambda rows: None,
             **fields) -> list[dict]:
  """Times rnn_jax at every spec, with the `compare` implementations, in alternating rounds.

  Specs that differ only in runner options (unroll, remat, hoist, backward) are timed in
  one group, together with the compare implementations (once per group) and, unless
  `peak_flops` is given, the ceiling matmul, so that every ratio in a group is taken
  under the same load. Ratios are relative to the group's first rnn_jax row. `on_rows` receives
  each group's rows as soon as they are measured (main.py appends them to its output file, so a
  run cut short keeps every group it finished).
  """
  check_known(compare, implementations.COMPARE)
  env = environment.environment()
  rows = []
  for group in _groups(specs):
    timers, row_specs, skipped = [], [], []
    makers = [("rnn_jax", implementations.rnn_jax, s) for s in group]
    makers += [(c, implementations.COMPARE[c], group[0]) for c in compare]
    for name, make, spec in makers:
      try:
        timers.append(make(spec))
        # Runner options describe rnn_jax rows only.
        row_specs.append(spec if name == "rnn_jax" else dataclasses.replace(spec, **dict.fromkeys(_RUNNER_OPTIONS)))
      except implementations.Unavailable as e:
        skipped.append(f"{name}: {e}")
    for s in skipped:
      log(f"  skipped {s}")
    if not timers:
      continue
    ceiling_timer = None if peak_flops > 0 else timing.matmul_timer(group[0].dtype, ceiling_size)
    results = timing.measure(timers + ([ceiling_timer] if ceiling_timer else []), rounds=rounds, warmup=warmup,
                              min_round_s=min_round_s, compile_rounds=compile_rounds)
    ceiling = peak_flops if ceiling_timer is None else ceiling_timer.flops / results[-1].median_s
    point = [report.make_row(spec, t, r, ceiling, env, **fields) for spec, t, r in zip(row_specs, timers, results)]
    report.add_ratios(point)
    on_rows(point)
    for row in point:
      options = f" backward={row['backward']} hoist={row['hoist']} remat={row['remat']} unroll={row['unroll']}"
      log(f"  {row['impl']:>8} {row['cell']} {row['mode']} B={row['batch']} H={row['hidden']} T={row['length']}"
          f"{options if row['impl'] == 'rnn_jax' else ''}: "
          f"{1e3 * row['median_s']:.1f} ms (spread {row['spread']:.0%}, x{row['speedup_of_rnn_jax']:.2f})")
    rows.extend(point)
  return rows


def remat_summary(rows: Sequence[dict]) -> list[str]:
  """For rows that differ only in `remat` (and `backward`), the memory remat saves and the time it costs."""
  key_fields = [f.name for f in dataclasses.fields(Spec) if f.name not in ("remat", "backward")]
  lines = []
  by_key: dict = {}
  for r in rows:
    if "remat" in r:
      by_key.setdefault((r["impl"],) + tuple(r[k] for k in key_fields), []).append(r)
  for group in by_key.values():
    plain = [r for r in group if not r["remat"] and r.get("temp_bytes") is not None]
    remat = [r for r in group if r["remat"] and r.get("temp_bytes") is not None]
    for a, b in itertools.product(plain, remat):
      lines.append(
          f"{a['impl']} {a['cell']} B={a['batch']} T={a['length']} H={a['hidden']}: remat (backward="
          f"{b['backward']}) vs none (backward={a['backward']}): temp memory {a['temp_bytes'] / 2**20:.0f} -> "
          f"{b['temp_bytes'] / 2**20:.0f} MiB (saves {(a['temp_bytes'] - b['temp_bytes']) / 2**20:.0f} MiB, "
          f"{1 - b['temp_bytes'] / a['temp_bytes']:.0%}), time x{b['median_s'] / a['median_s']:.2f}")
  return lines
