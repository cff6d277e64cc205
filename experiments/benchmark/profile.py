"""Where a jitted layer's time goes on an accelerator: kernels per call, their busy time against wall time.

  python -m experiments.benchmark.profile --cells=lstm,gru --shapes=16x256x100 --backward=auto,cudnn \
      --modes=fwdbwd --output=runs/benchmark/profile.jsonl

For each grid point (`spec.Spec`s) it compiles rnn_jax's step (and flax's, with
`--compare=flax`), runs `--calls` calls under `jax.profiler.trace`, and reads the trace back
(`jax.profiler.ProfileData`): wall time per call, device kernels per call, the device's busy
time per call (the union of its kernels' intervals) and the five kernels that take longest. When
busy time is far below wall time, the gaps between kernels (per-step launches and the loop's
host round trips) dominate, not the arithmetic. Prints one line per point; rows go to --output.
"""

import collections
import glob
import os
import tempfile
import time

from absl import app, flags

_CELLS = flags.DEFINE_list("cells", ["lstm"], "Registered cell names.")
_MODES = flags.DEFINE_list("modes", ["fwdbwd"], "fwd and/or fwdbwd.")
_SHAPES = flags.DEFINE_list("shapes", ["16x256x100"], "BATCHxHIDDENxLENGTH triples.")
_BACKWARD = flags.DEFINE_list("backward", ["auto"], "The runner's backward values to profile.")
_DTYPE = flags.DEFINE_list("dtype", ["float32"], "float32 and/or bfloat16.")
_COMPARE = flags.DEFINE_list("compare", [], "Also profile: flax.")
_CALLS = flags.DEFINE_integer("calls", 10, "Calls traced per point.", lower_bound=1)
_OUTPUT = flags.DEFINE_string("output", "runs/benchmark/profile.jsonl", "JSON-lines file rows are appended to.")

_TIMELINE_LINES = ("XLA Modules", "XLA Ops", "Steps", "XLA TraceMe", "Source code", "Launch Stats")


def _union_ns(intervals) -> int:
  """Total length of the union of `(start, end)` intervals."""
  total, reach = 0, None
  for start, end in sorted(intervals):
    if reach is None or start > reach:
      total, reach = total + end - start, end
    elif end > reach:
      total, reach = total + end - reach, end
  return total


def device_kernels(trace_dir: str) -> tuple[list, list]:
  """`(name, start_ns, duration_ns)` of every device kernel in the trace under `trace_dir`, and the
  names of the trace lines (streams) they were read from."""
  from jax.profiler import ProfileData  # pylint: disable=g-import-not-at-top
  kernels, line_names = [], []
  for path in glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True):
    for plane in ProfileData.from_file(path).planes:
      if not plane.name.startswith("/device:") or "CPU" in plane.name:
        continue
      lines = [line for line in plane.lines if line.name not in _TIMELINE_LINES]
      streams = [line for line in lines if "Stream" in line.name] or lines
      for line in streams:
        line_names.append(f"{plane.name} {line.name}")
        kernels += [(e.name, e.start_ns, e.duration_ns) for e in line.events]
  return kernels, line_names


def profile(timer, calls: int) -> dict:
  """Wall and device-busy time per call of a compiled `timing.Timer`, and its costliest kernels."""
  import jax  # pylint: disable=g-import-not-at-top
  timer.prepare(warmup=1)
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir):
      start = time.perf_counter()
      for _ in range(calls):
        timer.step()
      wall_s = (time.perf_counter() - start) / calls
    kernels, line_names = device_kernels(trace_dir)
  by_name = collections.Counter()
  for name, _, duration in kernels:
    by_name[name] += duration
  busy_s = _union_ns((s, s + d) for _, s, d in kernels) / calls / 1e9
  return dict(wall_ms=1e3 * wall_s, busy_ms=1e3 * busy_s, busy_fraction=busy_s / wall_s,
              kernels_per_call=len(kernels) / calls, trace_lines=line_names,
              top_kernels=[(n, round(d / calls / 1e3, 1)) for n, d in by_name.most_common(5)])  # us per call


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from experiments.benchmark import bench, environment, implementations, report  # pylint: disable=g-import-not-at-top
  specs = bench.grid(_CELLS.value, _MODES.value, bench.parse_shapes(_SHAPES.value), dtype=_DTYPE.value,
                     backward=_BACKWARD.value)
  env = environment.environment()
  for spec in specs:
    makers = [("rnn_jax", implementations.rnn_jax)]
    makers += [(c, implementations.COMPARE[c]) for c in _COMPARE.value if spec.backward == _BACKWARD.value[0]]
    for name, make in makers:
      try:
        timer = make(spec)
      except implementations.Unavailable as e:
        print(f"skipped {name} {spec.cell} backward={spec.backward}: {e}")
        continue
      row = dict(impl=name, cell=spec.cell, mode=spec.mode, batch=spec.batch, hidden=spec.hidden,
                 length=spec.length, dtype=spec.dtype, backward=spec.backward if name == "rnn_jax" else None,
                 device=env["device"], date=env["date"], **profile(timer, _CALLS.value))
      report.write_jsonl(_OUTPUT.value, [row])
      print(f"{name:>8} {spec.cell} {spec.mode} {spec.dtype} B={spec.batch} H={spec.hidden} T={spec.length} "
            f"backward={row['backward']}: wall {row['wall_ms']:.2f} ms, device busy {row['busy_ms']:.2f} ms "
            f"({row['busy_fraction']:.0%}), {row['kernels_per_call']:.0f} kernels/call; top (us/call): "
            f"{row['top_kernels']}")


if __name__ == "__main__":
  app.run(main)
