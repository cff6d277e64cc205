"""Per-device memory and step time of the language model's train step on `data x model` meshes.

  python -m experiments.benchmark.mesh --devices=4 --meshes=1x4,2x2,4x1

For each mesh the LSTMP LM's whole train step (Adam, the batch split over `data`, the params over `model` by
`rnn_jax.train.mesh`) is compiled and XLA's own per-device figures are read from `compiled.memory_analysis()`:
arguments (train state and batch shard), temporaries, and their sum less what the donated state reuses. The
meshes are then timed in alternating rounds in this one process, so the times are comparable with each other
as ratios; on CPU (`--devices`: simulated devices sharing the host's cores) they say nothing of accelerators.
"""

from __future__ import annotations

import json
import platform
import statistics
import time

from absl import app, flags

_DEVICES = flags.DEFINE_integer("devices", 0, "CPU only: simulate this many host devices (0: leave as is).")
_MESHES = flags.DEFINE_list("meshes", ["1x4", "2x2", "4x1"], "DATAxMODEL meshes to compare.")
_BATCH = flags.DEFINE_integer("batch", 32, "Global batch (streams).")
_LENGTH = flags.DEFINE_integer("length", 16, "Time steps per batch (BPTT window).")
_VOCAB = flags.DEFINE_integer("vocab", 8192, "Vocabulary size.")
_HIDDEN = flags.DEFINE_integer("hidden", 512, "LSTMP cells per layer.")
_PROJ = flags.DEFINE_integer("proj", 128, "LSTMP projection width (and embedding width).")
_LAYERS = flags.DEFINE_integer("layers", 2, "Stacked layers.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed rounds per mesh, alternating.", lower_bound=1)
_STEPS = flags.DEFINE_integer("steps_per_round", 3, "Train steps per round.", lower_bound=1)
_OUTPUT = flags.DEFINE_string("output", "", "JSON file the rows are written to (empty: none).")

MiB = 2 ** 20


def parse_mesh(text: str) -> tuple[int, int]:
  """`"2x2"` -> `(2, 2)`; ValueError naming the flag otherwise."""
  try:
    data, model = (int(v) for v in text.split("x"))
  except ValueError:
    raise ValueError(f"--meshes: expected DATAxMODEL such as 2x2, got {text!r}") from None
  return data, model


def mesh_step(model, data: int, model_axis: int, batch: dict):
  """`(layout, compiled step, state, batch, rng)` for `model` on a `data x model_axis` mesh."""
  import jax  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from rnn_jax import train  # pylint: disable=g-import-not-at-top

  layout = train.Layout.create(data, model_axis)

  def make_state(key):
    params = model.init(key)
    return train.create_train_state(params, optax.adam(1e-3), model.initial_carries(params, batch["inputs"].shape[0]))

  state = layout.init_state(make_state, jax.random.PRNGKey(0), model.param_axes)
  placed, rng = layout.shard_batch(batch), layout.replicate(jax.random.PRNGKey(1))
  compiled = layout.train_step(model.loss_fn, state).lower(state, placed, rng).compile()
  return layout, compiled, state, placed, rng


def memory_row(compiled) -> dict:
  """XLA's per-device bytes of a compiled SPMD step, in MiB."""
  m = compiled.memory_analysis()
  total = m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes
  return {"arguments_mib": m.argument_size_in_bytes / MiB, "temporaries_mib": m.temp_size_in_bytes / MiB,
          "total_mib": total / MiB}


def time_alternating(runs: dict, rounds: int, steps: int) -> dict:
  """`{name: median seconds per step}` over `rounds` rounds, the meshes taking turns within each round."""
  import jax  # pylint: disable=g-import-not-at-top
  times = {name: [] for name in runs}
  for _ in range(rounds):
    for name, run in runs.items():
      start = time.perf_counter()
      for _ in range(steps):
        run["state"], metrics = run["step"](run["state"], run["batch"], run["rng"])
      jax.block_until_ready((run["state"], metrics))
      times[name].append((time.perf_counter() - start) / steps)
  return {name: statistics.median(values) for name, values in times.items()}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  import jax  # pylint: disable=g-import-not-at-top
  if _DEVICES.value:
    jax.config.update("jax_num_cpu_devices", _DEVICES.value)
  import numpy as np  # pylint: disable=g-import-not-at-top
  from experiments.language_modeling.model import LanguageModel  # pylint: disable=g-import-not-at-top

  try:
    meshes = [parse_mesh(text) for text in _MESHES.value]
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  model = LanguageModel(vocab_size=_VOCAB.value, cell="lstmp", hidden_size=_HIDDEN.value, num_layers=_LAYERS.value,
                        embed_size=_PROJ.value, proj_size=_PROJ.value)
  tokens = np.random.default_rng(0).integers(0, _VOCAB.value, (_BATCH.value, _LENGTH.value + 1), dtype=np.int32)
  batch = {"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "reset": np.ones((_BATCH.value,), bool)}
  runs, rows = {}, []
  for data, model_axis in meshes:
    name = f"{data}x{model_axis}"
    try:
      _, compiled, state, placed, rng = mesh_step(model, data, model_axis, batch)
    except ValueError as e:
      raise app.UsageError(f"--meshes {name}: {e}") from None
    runs[name] = {"step": compiled, "state": state, "batch": placed, "rng": rng}
    rows.append({"mesh": name, **memory_row(compiled)})
  seconds = time_alternating(runs, _ROUNDS.value, _STEPS.value)
  fastest = min(seconds.values())
  for row in rows:
    row["time_vs_fastest"] = seconds[row["mesh"]] / fastest
  print(f"{time.strftime('%Y-%m-%d')}  {jax.device_count()} {jax.default_backend()} device(s), "
        f"{platform.machine()} {platform.processor() or ''}  jax {jax.__version__}")
  print(f"LSTMP LM: {_LAYERS.value}x{_HIDDEN.value} cells, projection {_PROJ.value}, vocab {_VOCAB.value}, "
        f"batch {_BATCH.value}x{_LENGTH.value}, Adam; per device:")
  print(f"{'mesh':>6} {'arguments MiB':>14} {'temporaries MiB':>16} {'total MiB':>10} {'time / fastest':>15}")
  for row in rows:
    print(f"{row['mesh']:>6} {row['arguments_mib']:>14.1f} {row['temporaries_mib']:>16.1f} {row['total_mib']:>10.1f} "
          f"{row['time_vs_fastest']:>15.2f}")
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as f:
      json.dump(rows, f, indent=2)


if __name__ == "__main__":
  app.run(main)
