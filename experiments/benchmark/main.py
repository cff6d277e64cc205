"""Benchmark: `python -m experiments.benchmark.main [flags]` (see README.md in this folder).

  # the four target shapes, LSTM and GRU fwd+bwd, against flax and torch, same process, alternating rounds
  python -m experiments.benchmark.main --cells=lstm,gru --modes=fwdbwd \
      --shapes=32x256x100,128x256x100,32x256x1000,32x1024x100 --compare=flax,torch
  # long sequences: memory saved by remat and its time cost
  python -m experiments.benchmark.main --cells=lstm --shapes=32x256x10000 --remat=false,true \
      --backward=autodiff,fused --rounds=3 --min_round_s=0
  # a cell's options: the peephole LSTM, hand-written backward against autodiff
  python -m experiments.benchmark.main --cells=lstm --cell_options=peepholes=True --backward=auto,autodiff
  # whole train steps of experiments (experiment or experiment/variant), at batch 32 and 64 steps
  python -m experiments.benchmark.main --train_steps=language_modeling/zaremba_medium,handwriting/generation \
      --shapes=32x0x64
  # the language model's train step beside the same step in its PyTorch reference, alternating rounds
  python -m experiments.benchmark.main --train_steps=language_modeling/shakespeare_char --compare=torch \
      --shapes=32x0x64
  # data-parallel scaling over 4 (CPU: simulated) devices
  python -m experiments.benchmark.main --train_steps=language_modeling --devices=4 --data_parallel

Every list flag is a grid axis. Rows go to --output as JSON lines and are printed as a table.
"""

import os

from absl import app, flags

_CELLS = flags.DEFINE_list("cells", ["lstm"], "Registered cell names (rnn_jax.cells.names()).")
_CELL_OPTIONS = flags.DEFINE_list("cell_options", [], "Static options of every --cells cell, key=value with "
                                   "Python literals (e.g. peepholes=True); flax and torch have no counterpart.")
_MODES = flags.DEFINE_list("modes", ["fwdbwd"], "fwd (outputs) and/or fwdbwd (grads w.r.t. params and inputs).")
_SHAPES = flags.DEFINE_list("shapes", ["32x256x100"], "BATCHxHIDDENxLENGTH triples.")
_INPUT_SIZE = flags.DEFINE_list("input_size", ["0"], "Input features (0: equal to the hidden size).")
_LAYERS = flags.DEFINE_list("layers", ["1"], "Stacked layers.")
_DIRECTION = flags.DEFINE_list("direction", ["uni"], "uni and/or bi (bidirectional, concatenated).")
_DTYPE = flags.DEFINE_list("dtype", ["float32"], "float32 and/or bfloat16. bfloat16: rnn_jax cells with matmul_dtype=bfloat16 (bf16 "
                                 "matmul operands, float32 accumulation, params and carries); flax cells with "
                                 "dtype=bfloat16, param_dtype=float32; torch modules in bfloat16.")
_UNROLL = flags.DEFINE_list("unroll", ["1"], "lax.scan unroll.")
_REMAT = flags.DEFINE_list("remat", ["false"], "Recompute the forward in the backward pass (true/false; see rnn_jax.scan).")
_HOIST = flags.DEFINE_list("hoist", ["auto"], "Hoist the input projection: auto/true/false.")
_BACKWARD = flags.DEFINE_list("backward", ["auto"], "The runner's backward: auto/autodiff/fused.")
_TIME_MAJOR = flags.DEFINE_bool("time_major", True, "[T, B, I] inputs (torch's default layout) or [B, T, I].")
_COMPARE = flags.DEFINE_list("compare", [], "Also time: flax, torch, cudnn (jax.experimental.rnn, GPU).")
_TRAIN_STEPS = flags.DEFINE_list("train_steps", [], "Experiments whose whole train step to time, each "
                                 "`experiment` (its default variant) or `experiment/variant`, e.g. "
                                 "language_modeling/zaremba_medium (any experiment package with a "
                                 "synthetic_train_step); replaces the cell grid.")
_DATA_PARALLEL = flags.DEFINE_bool("data_parallel", False, "Time the first --train_steps entry on 1, 2, 4, ... "
                                   "devices at the first --shapes batch per device.")
_DEVICES = flags.DEFINE_integer("devices", 0, "CPU only: simulate this many host devices (0: leave as is).")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed rounds per implementation (median and spread over them).",
                               lower_bound=1)
_WARMUP = flags.DEFINE_integer("warmup", 1, "Untimed calls after compilation.")
_MIN_ROUND_S = flags.DEFINE_float("min_round_s", 0.2, "Repeat calls within a round until it lasts this long.")
_COMPILE_ROUNDS = flags.DEFINE_integer(
    "compile_rounds", 1, "Compilations per JAX implementation, alternating, each after clearing JAX's caches: "
    "`compile s` is the fastest, `compile_s_median` (JSON) their median. One compilation varies by ~15 %.",
    lower_bound=1)
_PEAK_FLOPS = flags.DEFINE_float("peak_flops", 0.0, "The device's FLOP/s ceiling (0: measure a large matmul).")
_CEILING_SIZE = flags.DEFINE_integer("ceiling_size", 2048, "Matrix size of the ceiling measurement.")
_OMP_WAIT_POLICY = flags.DEFINE_string("omp_wait_policy", "", "Set OMP_WAIT_POLICY for torch before importing it "
                                       "(PASSIVE keeps oneDNN usable on a loaded, shared CPU).")
_KEEP_FREED_MEMORY = flags.DEFINE_bool("keep_freed_memory", True, "glibc malloc keeps freed memory (no page "
                                       "faults on each step's fresh buffers; see environment.keep_freed_memory).")
_OUTPUT = flags.DEFINE_string("output", "runs/benchmark/results.jsonl", "JSON-lines file rows are appended to.")
_LABEL = flags.DEFINE_string("label", "", "Free text recorded in every row.")


def _bools(values):
  table = {"true": True, "1": True, "false": False, "0": False}
  if any(v.lower() not in table for v in values):
    raise app.UsageError(f"expected true/false values, got {values}")
  return [table[v.lower()] for v in values]


def _ints(flag):
  try:
    return [int(v) for v in flag.value]
  except ValueError:
    raise app.UsageError(f"--{flag.name}: expected integers, got {flag.value}") from None


def _known(flag, known):
  from experiments.benchmark import bench  # pylint: disable=g-import-not-at-top
  try:
    bench.check_known(flag.value, known)
  except ValueError as e:
    raise app.UsageError(f"--{flag.name}: {e}") from None


def _grid(shapes):
  """The cell grid of the flags, or a usage error naming the flag a point cannot take."""
  from experiments.benchmark import bench, spec  # pylint: disable=g-import-not-at-top
  from rnn_jax import cells  # pylint: disable=g-import-not-at-top
  try:
    options = spec.cell_options(_CELL_OPTIONS.value)
    for cell in _CELLS.value:
      cells.get(cell, **options)
  except ValueError as e:
    raise app.UsageError(f"--cells/--cell_options: {e}") from None
  try:
    return bench.grid(_CELLS.value, _MODES.value, shapes, cell_options=[",".join(_CELL_OPTIONS.value)],
                      input_size=_ints(_INPUT_SIZE), layers=_ints(_LAYERS), direction=_DIRECTION.value,
                      dtype=_DTYPE.value, unroll=_ints(_UNROLL), remat=_bools(_REMAT.value),
                      hoist=_HOIST.value, backward=_BACKWARD.value, time_major=[_TIME_MAJOR.value])
  except ValueError as e:  # a grid point the harness cannot time (spec.Spec names the field)
    raise app.UsageError(f"grid flags: {e}") from None


def _run_train_steps(shapes, timing: dict, ceiling: dict, append) -> list[dict]:
  """Every --train_steps entry at each shape, or the first one's data-parallel scaling. The steps are
  built before any is timed: a variant or override the experiment rejects is a usage error."""
  from experiments.benchmark import experiment_steps  # pylint: disable=g-import-not-at-top
  try:
    if _DATA_PARALLEL.value:
      if not _TRAIN_STEPS.value:
        raise app.UsageError("--data_parallel needs --train_steps=<experiment>")
      batch, _, length = shapes[0]
      rows = experiment_steps.run_data_parallel(_TRAIN_STEPS.value[0], batch, length, **timing)
      append(rows)
      return rows
    return [row for batch, _, length in shapes
            for row in experiment_steps.run_train_steps(_TRAIN_STEPS.value, batch, length, on_rows=append,
                                                        compare=_COMPARE.value,
                                                        **timing, **ceiling)]
  except ValueError as e:
    raise app.UsageError(f"--train_steps: {e}") from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _OMP_WAIT_POLICY.value:
    os.environ["OMP_WAIT_POLICY"] = _OMP_WAIT_POLICY.value
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_enable_compilation_cache", False)  # compile times are XLA's, never a cache's load
  if _DEVICES.value:
    jax.config.update("jax_num_cpu_devices", _DEVICES.value)
  from experiments.benchmark import bench, environment, experiment_steps, implementations, report  # pylint: disable=g-import-not-at-top
  report.write_jsonl(_OUTPUT.value, [])  # a path that cannot be written fails now, not after the timing
  _known(_COMPARE, implementations.COMPARE)
  try:
    experiment_steps.check_entries(_TRAIN_STEPS.value)
  except ValueError as e:
    raise app.UsageError(f"--train_steps: {e}") from None
  try:
    shapes = bench.parse_shapes(_SHAPES.value)
  except ValueError as e:
    raise app.UsageError(f"--shapes: {e}") from None
  fields = dict(label=_LABEL.value, keep_freed_memory=_KEEP_FREED_MEMORY.value and environment.keep_freed_memory())
  append = lambda rows: report.write_jsonl(_OUTPUT.value, rows)  # as each point is measured
  timing = dict(rounds=_ROUNDS.value, warmup=_WARMUP.value, min_round_s=_MIN_ROUND_S.value,
                compile_rounds=_COMPILE_ROUNDS.value, **fields)
  ceiling = dict(peak_flops=_PEAK_FLOPS.value, ceiling_size=_CEILING_SIZE.value)
  if _TRAIN_STEPS.value or _DATA_PARALLEL.value:
    rows = _run_train_steps(shapes, timing, ceiling, append)
  else:
    rows = bench.run_grid(_grid(shapes), compare=_COMPARE.value, on_rows=append, **timing, **ceiling)
  env = environment.environment()
  print(f"\n{env['date']}  {env['device']} ({env['cpu']}, {env['host_cpus']} cpus)  jax {env['jax']}  "
        f"flax {env['flax']}  torch {env.get('torch', '-')}  load {os.getloadavg()[0]:.1f}")
  print(report.format_table(rows))
  if not (_TRAIN_STEPS.value or _DATA_PARALLEL.value):
    print("\n" + report.format_comparison(rows))
  for line in report.train_step_ratios(rows):
    print(line)
  for line in bench.remat_summary(rows):
    print(line)
  print(f"\n{len(rows)} rows appended to {_OUTPUT.value}")


if __name__ == "__main__":
  app.run(main)
