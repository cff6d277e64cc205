"""The benchmark: FLOP counting against closed forms and jaxprs, row format, table, modes, and the
experiments' train steps found by name."""

import functools
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

import experiments.language_modeling
from experiments import command_line
from experiments.language_modeling import lm, torch_reference
from experiments.benchmark import bench, experiment_steps, implementations, report, timing
from experiments.benchmark.flops import jaxpr_matmul_flops
from experiments.benchmark.spec import Spec, cell_options
from rnn_jax import scan

B, T, I, H = 2, 3, 5, 7
ROW_FIELDS = {"impl": str, "cell": str, "mode": str, "batch": int, "length": int, "hidden": int, "compile_s": float,
              "median_s": float, "min_s": float, "max_s": float, "spread": float, "cpu_s": float, "rounds": int,
              "tokens_per_s": float, "flops": int, "flops_per_s": float, "fraction_of_ceiling": float,
              "backend": str, "device": str, "jax": str, "date": str}
FAST = dict(rounds=2, warmup=0, min_round_s=0.0, peak_flops=1e9)


def test_matmul_flops_closed_form():
  # LSTM, one layer: x W_x [I, 4H] and h W_h [H, 4H] per step and sequence, 2 FLOPs per multiply-add.
  spec = Spec(cell="lstm", mode="fwd", batch=B, length=T, hidden=H, input_size=I)
  assert implementations.spec_flops(spec) == 2 * B * T * (I * 4 * H + H * 4 * H)
  assert implementations.spec_flops(Spec(**{**spec.__dict__, "mode": "fwdbwd"})) == 3 * 2 * B * T * (I + H) * 4 * H
  # Two bidirectional GRU layers: the second reads both directions' outputs (2H features).
  spec = Spec(cell="gru", mode="fwd", batch=B, length=T, hidden=H, input_size=I, layers=2, direction="bi")
  expected = 2 * (2 * B * T * (I + H) * 3 * H) + 2 * (2 * B * T * (2 * H + H) * 3 * H)
  assert implementations.spec_flops(spec) == expected


def test_jaxpr_counter_on_a_known_function():
  w = jnp.ones((4, 6))

  def f(x):  # one [3,4]x[4,6] dot, then a scan of 5 steps with a [3,6]x[6,6] dot each, and a batched dot
    y = x @ w
    y, _ = jax.lax.scan(lambda c, _: (jnp.tanh(c @ jnp.ones((6, 6))), None), y, None, length=5)
    return jnp.einsum("bij,bjk->bik", jnp.ones((2, 3, 4)), jnp.ones((2, 4, 5))), y

  assert jaxpr_matmul_flops(f, jnp.ones((3, 4))) == 2 * 3 * 4 * 6 + 5 * 2 * 3 * 6 * 6 + 2 * 2 * 3 * 4 * 5


@pytest.mark.parametrize("mode", ["fwd", "fwdbwd"])
@pytest.mark.parametrize("cell,options", [("lstm", {}), ("gru", {"backward": "autodiff"}),
                                          ("elman", {"hoist": "false"}), ("lstm", {"direction": "bi", "layers": 2})])
def test_matmul_flops_equal_the_dots_jax_runs(cell, options, mode):
  spec = Spec(cell=cell, mode=mode, batch=B, length=T, hidden=H, input_size=I, **options)
  cell_, params = implementations._rnn_jax_params(spec)
  xs = jnp.ones((T, B, I))
  hoist = {"auto": None, "true": True, "false": False}[spec.hoist]
  forward = lambda p, x: scan.run_stack(cell_, p, x, bidirectional=spec.direction == "bi", time_major=True,
                                        hoist=hoist, backward=spec.backward)[1]
  fn = forward if mode == "fwd" else jax.grad(lambda p, x: jnp.sum(forward(p, x) ** 2), argnums=(0, 1))
  extra = 0
  if mode == "fwdbwd" and spec.backward == "auto" and spec.hoist != "false":
    # rnn_jax.fused gets the bias gradient from a row of ones in its weight-gradient matmul.
    gates = {"lstm": 4, "gru": 3, "elman": 1}[cell] * H
    extra = 2 * T * B * gates * spec.layers * (2 if spec.direction == "bi" else 1)
  assert jaxpr_matmul_flops(fn, params, xs) == implementations.spec_flops(spec) + extra


def _check_row(row):
  for field, kind in ROW_FIELDS.items():
    assert isinstance(row[field], kind), (field, row[field])
  assert row["min_s"] <= row["median_s"] <= row["max_s"]
  assert row["tokens_per_s"] == pytest.approx(row["batch"] * row["length"] / row["median_s"])
  assert row["flops_per_s"] == pytest.approx(row["flops"] / row["median_s"])
  assert row["fraction_of_ceiling"] == pytest.approx(row["flops_per_s"] / row["ceiling_flops_per_s"])


def test_grid_rows_jsonl_and_table(tmp_path):
  specs = bench.grid(["lstm", "gru"], ["fwd", "fwdbwd"], bench.parse_shapes(["2x4x3"]), remat=[False, True])
  assert len(specs) == 8 and {s.cell for s in specs} == {"lstm", "gru"}
  plain = [s for s in specs if not s.remat][:2]
  rows = bench.run_grid(plain, compare=["flax", "cudnn"], log=lambda _: None, label="test", **FAST)
  impls = [r["impl"] for r in rows]
  assert impls == ["rnn_jax", "flax"] * 2  # cudnn needs a GPU: skipped
  for row in rows:
    _check_row(row)
    assert row["label"] == "test" and row["temp_bytes"] >= 0
  assert rows[0]["speedup_of_rnn_jax"] == 1.0
  assert rows[1]["speedup_of_rnn_jax"] == pytest.approx(rows[1]["median_s"] / rows[0]["median_s"])

  path = tmp_path / "out" / "rows.jsonl"
  report.write_jsonl(str(path), rows)
  report.write_jsonl(str(path), rows[:1])  # appends
  read = [json.loads(line) for line in path.read_text().splitlines()]
  assert len(read) == 5 and read[0]["median_s"] == rows[0]["median_s"]

  table = report.format_table(rows).splitlines()
  assert len(table) == 2 + len(rows) and "median ms" in table[0] and "x rnn_jax" in table[0]
  assert table[2].startswith("| rnn_jax | lstm | fwd | 2 | 3 | 4 |")


def test_torch_rows_when_installed():
  pytest.importorskip("torch")
  spec = Spec(cell="gru", mode="fwdbwd", batch=2, length=3, hidden=4)
  rows = bench.run_grid([spec], compare=["torch"], log=lambda _: None, **FAST)
  assert [r["impl"] for r in rows] == ["rnn_jax", "torch"]
  _check_row(rows[1])


def test_bfloat16_rows_use_the_cells_mixed_precision():
  spec = Spec(cell="lstm", mode="fwdbwd", batch=2, length=3, hidden=4, dtype="bfloat16")
  cell, params = implementations._rnn_jax_params(spec)
  assert cell.matmul_dtype == "bfloat16"  # bf16 operands, float32 accumulation, params and carries
  assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype("float32")}
  rows = bench.run_grid([spec], compare=["flax"], log=lambda _: None, **FAST)
  assert [(r["impl"], r["dtype"]) for r in rows] == [("rnn_jax", "bfloat16"), ("flax", "bfloat16")]
  for row in rows:
    _check_row(row)


def test_cell_options_reach_the_cell_and_the_rows():
  assert cell_options(["peepholes=True", "forget_bias=0.5", "activation=relu"]) == {
      "peepholes": True, "forget_bias": 0.5, "activation": "relu"}
  with pytest.raises(ValueError, match="key=value"):
    cell_options(["peepholes"])
  spec = Spec(cell="lstm", mode="fwdbwd", batch=2, length=3, hidden=4, cell_options="peepholes=True")
  cell, params = implementations._rnn_jax_params(spec)
  assert cell.peepholes and params[0]["w_peep"].shape == (3, 4)
  logged = []
  rows = bench.run_grid([spec], compare=["flax"], log=logged.append, **FAST)
  assert [(r["impl"], r["cell_options"]) for r in rows] == [("rnn_jax", "peepholes=True")]  # flax has no peepholes
  assert any("no flax counterpart" in line for line in logged)
  _check_row(rows[0])
  assert "| options |" in report.format_table(rows).splitlines()[0]
  assert "lstm(peepholes=True)" in report.format_comparison(rows)


def test_remat_summary_reports_memory_and_time():
  specs = bench.grid(["lstm"], ["fwdbwd"], [(2, 8, 40)], remat=[False, True], backward=["autodiff"])
  rows = bench.run_grid(specs, log=lambda _: None, **FAST)
  assert [r["remat"] for r in rows] == [False, True]
  # Runner variants of one point are timed together; ratios are against the first.
  assert rows[1]["speedup_of_rnn_jax"] == pytest.approx(rows[1]["median_s"] / rows[0]["median_s"])
  lines = bench.remat_summary(rows)
  assert len(lines) == 1 and "saves" in lines[0] and "time x" in lines[0]


def test_unavailable_specs_are_skipped_with_a_reason():
  spec = Spec(cell="lstm", mode="fwd", batch=2, length=3, hidden=4, backward="fused", hoist="false")
  with pytest.raises(implementations.Unavailable, match="hoist"):
    implementations.rnn_jax(spec)
  logged = []
  assert bench.run_grid([spec], log=logged.append, **FAST) == []
  assert "hoist" in logged[0]


@pytest.mark.parametrize("field, value", [("mode", "bwd"), ("dtype", "float64"), ("direction", "both"),
                                          ("hoist", "maybe"), ("backward", "manual"), ("batch", 0),
                                          ("length", 0), ("hidden", 0), ("layers", 0), ("unroll", 0),
                                          ("input_size", -1)])
def test_a_grid_point_the_harness_cannot_time_names_its_field(field, value):
  with pytest.raises(ValueError, match=f"^{field} must"):
    Spec(**{field: value})


@pytest.mark.parametrize("shape", ["32x256", "0x256x10", "32x256x0", "32xax10"])
def test_bad_shapes_are_rejected(shape):
  with pytest.raises(ValueError, match="BxHxT"):
    bench.parse_shapes([shape])


def test_the_command_line_rejects_bad_flags_by_name():
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  for flags, message in [(["--modes=bwd"], "mode must be one of fwd, fwdbwd"),
                         (["--compare=bogus"], "--compare: unknown ['bogus']"),
                         (["--layers=two"], "--layers: expected integers"),
                         (["--train_steps=bogus"], "--train_steps: no experiment 'bogus' with a synthetic_train_step"),
                         (["--train_steps=speech/nope"], "--train_steps: unknown variant 'nope'")]:
    result = subprocess.run([sys.executable, "-m", "experiments.benchmark.main", *flags, "--output=/dev/null"],
                            cwd=repo, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode != 0 and message in result.stderr, (flags, result.stderr[-500:])
    assert "Traceback" not in result.stderr


def test_train_step_and_data_parallel_rows(monkeypatch):
  small = dict(hidden_size=8, embed_size=8)
  make = experiments.language_modeling.synthetic_train_step
  monkeypatch.setattr(experiments.language_modeling, "synthetic_train_step",
                      lambda batch, length, **kw: make(batch, length, **small, **kw))
  step = experiment_steps.synthetic_step("language_modeling", 2, 3)
  rows = experiment_steps.run_train_steps(["language_modeling"], 2, 3, **FAST)
  dp = experiment_steps.run_data_parallel("language_modeling", 2, 3, rounds=2, warmup=0, min_round_s=0.0)
  assert rows[0]["impl"] == "language_modeling/zaremba_small" and rows[0]["mode"] == "train_step"
  assert rows[0]["tokens_per_s"] == pytest.approx(6 / rows[0]["median_s"])
  # The step's matmuls: 2 LSTM layers (E=H=8) and the [8, V] softmax layer, forward and backward
  # (plus the fused LSTM's bias-gradient row, 2 * 32 per token and layer).
  vocab = step.state.params["out_w"].shape[1]
  per_token = 2 * (2 * (8 * 32 + 8 * 32)) + 2 * 8 * vocab
  assert rows[0]["flops"] == 3 * 6 * per_token + 6 * 2 * (2 * 32)
  assert [r["devices"] for r in dp][0] == 1 and dp[0]["scaling_efficiency"] == 1.0
  assert len(dp) == jax.device_count() if jax.device_count() <= 2 else len(dp) >= 2


def test_recogniser_step_has_a_decode_row_timed_against_it(monkeypatch):
  import experiments.handwriting
  from experiments.handwriting import handwriting
  make = experiments.handwriting.synthetic_train_step
  monkeypatch.setattr(experiments.handwriting, "synthetic_train_step",
                      lambda batch, length, **kw: make(batch, length, hidden_size=8, **kw))
  searches = []
  search = handwriting.ctc.beam_search
  monkeypatch.setattr(handwriting.ctc, "beam_search",
                      lambda lp, lengths, beam_size: searches.append((len(lp), beam_size)) or search(lp, lengths, beam_size))
  rows = experiment_steps.run_train_steps(["handwriting/recognition"], 200, 12, **FAST)
  step, decode = rows
  assert (step["mode"], decode["mode"], decode["impl"]) == ("train_step", "decode", "handwriting/recognition decode")
  # The 1000 test sequences in 5 batches of 200, beam 8; decoded on the first call and in each of the 2 rounds.
  assert searches == [(200, 8)] * 5 * 3 and decode["sequences"] == 1000
  assert decode["train_steps_per_decode"] == pytest.approx(decode["median_s"] / step["median_s"])
  assert decode["share_of_training"] == pytest.approx(decode["train_steps_per_decode"] / 600)
  assert "| decode | 200 | 12 |" in report.format_table(rows)


def test_language_model_train_step_beside_its_torch_reference(monkeypatch):
  """The PyTorch step is the same model (as many parameters but nn.LSTM's second bias), learns from its batch,
  and is timed in the same rounds; the rows carry the time ratio and the printed line the tokens/s ratio."""
  torch = pytest.importorskip("torch", reason="the PyTorch reference needs the torch extra")
  small = dict(hidden_size=8, embed_size=4)
  for name in ("synthetic_train_step", "torch_train_step"):
    monkeypatch.setattr(experiments.language_modeling, name,
                        functools.partial(getattr(experiments.language_modeling, name), **small))
  step = experiments.language_modeling.torch_train_step(2, 3, variant="shakespeare_char")
  losses = [step() for _ in range(30)]
  assert losses[-1] < losses[0] - 0.2, losses  # learns its one batch (Adam 2e-3)
  config = command_line.named_config("experiments.language_modeling.configs", "shakespeare_char", small)
  reference = torch_reference.make_model(torch, config, lm.synthetic_vocab_size(config))
  mine = experiment_steps.synthetic_step("language_modeling/shakespeare_char", 2, 3)
  assert (sum(p.numel() for p in reference.parameters()) - 2 * 4 * 8  # nn.LSTM's b_hh, 2 layers x 4H
          == sum(x.size for x in jax.tree.leaves(mine.state.params)))
  rows = experiment_steps.run_train_steps(["language_modeling/shakespeare_char"], 2, 3, compare=["torch"], **FAST)
  assert [r["impl"] for r in rows] == ["language_modeling/shakespeare_char", "torch language_modeling/shakespeare_char"]
  assert rows[0]["speedup_of_rnn_jax"] == 1.0
  assert rows[1]["speedup_of_rnn_jax"] == pytest.approx(rows[1]["median_s"] / rows[0]["median_s"])
  ratio = rows[0]["tokens_per_s"] / rows[1]["tokens_per_s"]
  assert report.train_step_ratios(rows) == [
      f"language_modeling/shakespeare_char: rnn_jax {rows[0]['tokens_per_s']:.4g} tokens/s, torch "
      f"{rows[1]['tokens_per_s']:.4g} tokens/s, rnn_jax / torch {ratio:.2f}"]
  with pytest.raises(ValueError, match="--compare with --train_steps takes only torch, got flax"):
    experiment_steps.run_train_steps(["language_modeling"], 2, 3, compare=["flax"], **FAST)


def test_compile_rounds_recompile_from_cold_caches():
  traces = []

  def double(x):
    traces.append(x.shape)  # runs only when JAX traces `double`, not on a cached trace
    return 2 * x

  x, holder = jnp.ones(3), {}
  compiled = timing.Timer("jax", lambda: jax.block_until_ready(holder["compiled"](x)),
                           compile_fn=lambda: holder.update(compiled=jax.jit(double).lower(x).compile()))
  first_call = timing.Timer("torch-like", lambda: None)  # no ahead-of-time compilation
  results = timing.measure([compiled, first_call], rounds=2, warmup=0, min_round_s=0.0, compile_rounds=3)
  assert len(traces) == 3 and len(compiled.compile_times) == 3  # each compilation traced afresh
  assert compiled.compile_s == min(compiled.compile_times) and first_call.compile_times == []
  row = report.make_row(None, compiled, results[0], None, {})
  assert row["compile_rounds"] == 3 and row["compile_s"] <= row["compile_s_median"]
  assert report.make_row(None, first_call, results[1], None, {})["compile_rounds"] == 1
  # Through the grid: every JAX implementation of the row compiles `compile_rounds` times.
  spec = Spec(cell="elman", mode="fwd", batch=2, length=3, hidden=4)
  rows = bench.run_grid([spec], compare=["flax"], log=lambda _: None, compile_rounds=2, **FAST)
  assert [r["compile_rounds"] for r in rows] == [2, 2]


def test_ceiling_measured_in_the_same_rounds():
  spec = Spec(cell="elman", mode="fwd", batch=2, length=3, hidden=4)
  rows = bench.run_grid([spec], log=lambda _: None, rounds=2, warmup=0, min_round_s=0.0, ceiling_size=64)
  assert rows[0]["ceiling_flops_per_s"] > 0
  assert rows[0]["fraction_of_ceiling"] == pytest.approx(rows[0]["flops_per_s"] / rows[0]["ceiling_flops_per_s"])


# Tiny models of the experiments' train steps: entry -> overrides of its config's model.
TINY_STEPS = {
    "language_modeling": dict(hidden_size=8, embed_size=8),
    "language_modeling/zaremba_medium": dict(hidden_size=8, embed_size=8),
    "handwriting/recognition": dict(hidden_size=8), "handwriting/generation": dict(hidden_size=8),
    "translation": dict(encoder_size=8, decoder_size=8, embed_size=8), "speech": dict(hidden_size=8),
}


def synthetic_entries() -> list[tuple[str, dict]]:
  """`(entry, overrides)`: those of TINY_STEPS, and every other experiment with a synthetic_train_step at its
  defaults."""
  named = {entry.partition("/")[0] for entry in TINY_STEPS}
  return list(TINY_STEPS.items()) + [(name, {}) for name in experiment_steps.experiment_names() if name not in named]


def test_discovery_finds_every_experiment_with_a_synthetic_train_step():
  root = pathlib.Path(__file__).resolve().parent.parent / "experiments"
  exposing = sorted(init.parent.name for init in root.glob("*/__init__.py")
                    if "synthetic_train_step" in init.read_text())
  assert experiment_steps.experiment_names() == exposing
  assert {"language_modeling", "handwriting", "translation", "speech"} <= set(exposing)
  with pytest.raises(ValueError, match="^no experiment 'bogus' with a synthetic_train_step; known: .*handwriting, language_modeling"):
    experiment_steps.check_entries(["language_modeling", "bogus/x"])
  for entry, message in [("speech/nope", "unknown variant 'nope'.*known: dtmf, .*fsdd_connected"),
                         ("handwriting/synthesis", "no handwriting variant 'synthesis'; known: recognition, generation")]:
    with pytest.raises(ValueError, match=message):
      experiment_steps.synthetic_step(entry, 2, 12)
  with pytest.raises(ValueError, match="override hidden: config.model has no field 'hidden'"):
    experiment_steps.synthetic_step("language_modeling", 2, 12, hidden=8)


@pytest.mark.parametrize("entry,overrides", synthetic_entries())
def test_every_experiment_train_step_runs(entry, overrides):
  step = experiment_steps.synthetic_step(entry, 2, 12, **overrides)
  timer = experiment_steps.step_timer(step)
  result = timing.measure([timer], rounds=1, warmup=0, min_round_s=0.0)[0]
  assert step.name.startswith(entry) and result.median_s > 0 and timer.flops > 0 and step.tokens > 0
  assert int(timer.optimizer_steps()) == 2  # the first call and the one timed call each applied an update
  loss, _ = step.loss_fn(step.state.params, step.state.model_state, step.batch, jax.random.PRNGKey(0), True)
  assert jnp.isfinite(loss)


def test_each_point_is_handed_over_as_soon_as_it_is_measured():
  specs = bench.grid(["lstm", "gru"], ["fwd"], bench.parse_shapes(["2x4x3"]))
  groups = []
  rows = bench.run_grid(specs, compare=["flax"], log=lambda _: None, on_rows=groups.append, **FAST)
  assert [[r["impl"] for r in g] for g in groups] == [["rnn_jax", "flax"]] * 2
  assert [r for g in groups for r in g] == rows


def test_a_run_cut_short_keeps_the_points_it_finished(tmp_path):
  # The GPU script kills stages at their time limit: rows already measured must be in the file.
  output = tmp_path / "rows.jsonl"
  command = [sys.executable, "-m", "experiments.benchmark.main", "--cells=lstm,gru,elman,irnn", "--modes=fwd",
             "--shapes=2x4x3", "--rounds=1", "--min_round_s=0", "--peak_flops=1e9", f"--output={output}"]
  process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  for line in process.stdout:
    if "rnn_jax gru fwd" in line:  # the second point is measured: stop the run as a time limit would
      process.kill()
      break
  process.wait()
  cells = [json.loads(line)["cell"] for line in output.read_text().splitlines()]
  assert cells[:2] == ["lstm", "gru"] and "irnn" not in cells


def test_profile_busy_time_is_the_union_of_kernel_intervals():
  from experiments.benchmark import profile  # pylint: disable=g-import-not-at-top
  assert profile._union_ns([(0, 10), (5, 20), (30, 40), (32, 35), (40, 41)]) == 20 + 11  # pylint: disable=protected-access
  assert profile._union_ns([]) == 0  # pylint: disable=protected-access


def test_profile_rows_on_cpu(tmp_path):
  output = tmp_path / "profile.jsonl"
  result = subprocess.run([sys.executable, "-m", "experiments.benchmark.profile", "--cells=lstm", "--shapes=2x4x3",
                           "--backward=auto,autodiff", "--compare=flax", "--calls=2", f"--output={output}"],
                          capture_output=True, text=True, timeout=300, check=True)
  rows = [json.loads(line) for line in output.read_text().splitlines()]
  assert [(r["impl"], r["backward"]) for r in rows] == [("rnn_jax", "auto"), ("flax", None), ("rnn_jax", "autodiff")]
  for row in rows:  # a CPU has no device kernels in the trace: no busy time, but a wall time
    assert row["wall_ms"] > 0 and row["kernels_per_call"] == 0 and row["busy_ms"] == 0
  assert "wall" in result.stdout
