"""rnn_jax's LM and the PyTorch reference on the same corpus, config and wall budget; one plot of both.

  python -m experiments.language_modeling.side_by_side --minutes=30 --out=runs/side_by_side \
    [--config=experiments/language_modeling/configs/torch_comparison.py] [--config.<field>=...] \
    [--rnn_jax_config.<field>=...]

`--schedule=pinned` (default) runs both at once, each pinned to its own core with `taskset -c`;
`--schedule=sequential` runs one after the other with the whole machine each (for a machine with one core, or
without taskset). Both programs read `--config` and its `--config.<field>` overrides; `--rnn_jax_config.<field>`
overrides apply to rnn_jax's run only (its own recipe against the reference's, e.g. a smaller embedding). Each
gets `--minutes` of wall time from its launch (start-up, compilation and validation included); rnn_jax's run is
stopped with SIGTERM, which ends it cleanly. Writes `OUT/rnn_jax/` (its workdir),
`OUT/torch/metrics.jsonl`, each program's launch time (`OUT/<name>.started`) and `OUT/side_by_side.png`
(validation nats/char against wall minutes). `--programs=rnn_jax` runs only rnn_jax's side into an OUT that holds
the reference's run already (a new rnn_jax recipe against the same reference curve); a program whose output is
already in OUT is refused before anything starts. A program that fails before its budget ends is named in one
line (exit status 1) after the plot of what there is. Needs the `torch` and `experiments` extras.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

from absl import app, flags

from experiments import command_line


DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "torch_comparison.py")


def config_arguments(argv: list[str]) -> list[str]:
  """The `--config` (this program's default unless given) and `--config.<field>` arguments of `argv`, to hand
  on to both programs unchanged."""
  found = [arg for arg in argv if arg.startswith(("--config=", "--config.", "--noconfig."))]
  return found if any(arg.startswith("--config=") for arg in found) else [f"--config={DEFAULT_CONFIG}", *found]


def rnn_jax_arguments(argv: list[str]) -> list[str]:
  """`--rnn_jax_config.<field>=...` arguments of `argv` as the `--config.<field>=...` of rnn_jax's run."""
  return ["--config." + arg.split(".", 1)[1] for arg in argv if arg.startswith("--rnn_jax_config.")]


def commands(config_args: list[str], rnn_jax_args: list[str], out: str, minutes: float,
             threads: int) -> dict[str, list[str]]:
  """The two programs' command lines; the reference uses `threads` threads."""
  python = [sys.executable, "-m", "experiments.language_modeling."]
  return {
      "rnn_jax": [python[0], python[1], python[2] + "main", *config_args, *rnn_jax_args,
                  f"--workdir={os.path.join(out, 'rnn_jax')}", "--config.eval_splits=('valid',)",
                  "--config.sample.length=0"],
      "torch": [python[0], python[1], python[2] + "torch_reference", *config_args, f"--minutes={minutes}",
                f"--metrics={os.path.join(out, 'torch', 'metrics.jsonl')}", f"--threads={threads}"],
  }


OUTPUTS = {"rnn_jax": os.path.join("rnn_jax", "metrics.jsonl"), "torch": os.path.join("torch", "metrics.jsonl")}
# What in OUT means a program ran there: rnn_jax's whole workdir (a rerun would resume it), the reference's metrics.
RUNS = {"rnn_jax": "rnn_jax", "torch": OUTPUTS["torch"]}


def check_outputs(out: str, programs: list[str]) -> None:
  """Exits in one line if a program to run has a run in `out` already (`RUNS`)."""
  for name in programs:
    if os.path.exists(os.path.join(out, RUNS[name])):
      sys.exit(f"{os.path.join(out, name)} holds a run already: choose another --out, or leave {name} out of "
               "--programs to plot against it")


def launch(name: str, command: list[str], out: str, core: int | None) -> tuple[subprocess.Popen, float]:
  """`(process, launch time)`; its output goes to `OUT/<name>.log`, the launch time to `OUT/<name>.started`."""
  if core is not None:
    command = ["taskset", "-c", str(core), *command]
  log = open(os.path.join(out, f"{name}.log"), "w")  # pylint: disable=consider-using-with
  started = time.time()
  with open(os.path.join(out, f"{name}.started"), "w") as f:
    json.dump(started, f)
  return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), started


def finish(process: subprocess.Popen, started: float, minutes: float) -> bool:
  """Waits for the budget, then stops the process with SIGTERM (a clean stop) if it still runs; False if it
  ended before that with a nonzero exit status (it failed)."""
  try:
    return process.wait(timeout=max(0.0, started + 60 * minutes - time.time())) == 0
  except subprocess.TimeoutExpired:
    process.send_signal(signal.SIGTERM)
    process.wait()
    return True


def curve(metrics_path: str, started: float) -> list[tuple[float, float]]:
  """`[(wall minutes since launch, valid nats/char)]` from a metrics.jsonl."""
  points = []
  with open(metrics_path) as f:
    for line in f:
      record = json.loads(line)
      if "valid_loss" in record:
        points.append(((record["time"] - started) / 60, record["valid_loss"]))
  return points


def plot(curves: dict, path: str, title: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, points in curves.items():
    if points:
      ax.plot(*zip(*points), marker="o", label=name)
  ax.set(xlabel="wall time (minutes)", ylabel="validation nats/char")
  ax.set_title("\n".join(textwrap.fill(line, 70) for line in title.splitlines()), fontsize=9)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def run(config_args: list[str], rnn_jax_args: list[str], out: str, minutes: float, schedule: str,
        programs: list[str]) -> dict:
  """Runs `programs`, plots every program with a run in `out`, and returns `{name: [(minutes, valid nats/char)]}`;
  exits in one line naming each program that failed (after plotting what there is)."""
  check_outputs(out, programs)
  pinned = schedule == "pinned" and len(programs) > 1
  if pinned and (shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2):
    sys.exit("--schedule=pinned needs taskset and two cores: use --schedule=sequential")
  os.makedirs(os.path.join(out, "torch"), exist_ok=True)
  cores = sorted(os.sched_getaffinity(0))[:2] if pinned else [None, None]
  started, running, ended_well = {}, {}, {}
  threads = 1 if pinned else len(os.sched_getaffinity(0))
  chosen = {name: command for name, command in commands(config_args, rnn_jax_args, out, minutes, threads).items()
            if name in programs}
  for (name, command), core in zip(chosen.items(), cores):
    running[name], started[name] = launch(name, command, out, core)
    if not pinned:  # one at a time: the next starts when this one is done
      ended_well[name] = finish(running[name], started[name], minutes)
  ended_well.update({name: finish(process, started[name], minutes) for name, process in running.items()
                     if name not in ended_well})
  failed = [name for name, good in ended_well.items() if not good]
  curves = {}
  for name, path in OUTPUTS.items():
    if os.path.exists(os.path.join(out, path)) and os.path.exists(os.path.join(out, f"{name}.started")):
      with open(os.path.join(out, f"{name}.started")) as f:
        curves[name] = curve(os.path.join(out, path), json.load(f))
  own = ", ".join(arg.removeprefix("--config.") for arg in rnn_jax_args)
  plot(curves, os.path.join(out, "side_by_side.png"),
       f"{schedule}, {minutes:g} min each" + (f"\nrnn_jax: {own}" if own else ""))
  if failed:
    sys.exit("; ".join(f"{name} failed: see {os.path.join(out, name + '.log')}" for name in failed))
  return curves


def define_flags() -> dict:
  """The command line's flags (defined only when run as a program, so that tests can import the module); the
  config is parsed here only to check its fields: each program reads the arguments itself."""
  return {"config": command_line.config_flag(__file__, "torch_comparison"),
          "rnn_jax_config": command_line.config_flag(
              __file__, "torch_comparison", name="rnn_jax_config",
              help_text="Only its --rnn_jax_config.<field> overrides are read: rnn_jax's run applies them on top "
                        "of --config's."),
          "minutes": flags.DEFINE_float("minutes", 30.0, "Wall budget of each program."),
          "out": flags.DEFINE_string("out", "runs/side_by_side", "Output folder."),
          "schedule": flags.DEFINE_enum("schedule", "pinned", ["pinned", "sequential"],
                                        "Both at once on one core each, or one after the other."),
          "programs": flags.DEFINE_multi_enum("programs", ["rnn_jax", "torch"], ["rnn_jax", "torch"],
                                              "Which programs to run (the others' runs in --out are plotted).")}


def main(argv, flag):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flag["minutes"].value > 0:
    sys.exit(f"--minutes must be > 0, got {flag['minutes'].value}")
  curves = run(config_arguments(sys.argv), rnn_jax_arguments(sys.argv), flag["out"].value, flag["minutes"].value,
               flag["schedule"].value, flag["programs"].value)
  for name, points in curves.items():
    print(f"{name}: " + ", ".join(f"{m:.1f} min {v:.3f}" for m, v in points))


if __name__ == "__main__":
  app.run(functools.partial(main, flag=define_flags()))
