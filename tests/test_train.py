"""Training core: pure step, optimizers, checkpoints (corrupt / incompatible), non-finite stop, data parallelism."""

import dataclasses
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from rnn_jax import train
from rnn_jax.train import optim

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(**overrides):
  c = ml_collections.ConfigDict(dict(seed=0, num_steps=6, steps_per_epoch=3, log_every=1, eval_every=3,
                                     checkpoint_every=2, keep_checkpoints=2, divergence_factor=10.0,
                                     optimizer=optim.default_config()))
  c.optimizer.update(name="sgd", learning_rate=0.1)
  c.update(overrides)
  return c


def _regression_task(width=4, nan_at_step=None):
  """Linear regression with noise-free targets; batch s is a pure function of s."""
  true_w = jnp.arange(1.0, width + 1.0)

  def loss_fn(params, model_state, batch, rng, train_mode):
    pred = batch["x"] @ params["w"]
    loss = jnp.mean((pred - batch["y"]) ** 2) * batch["scale"][0]
    return loss, ({"mean_pred": jnp.mean(pred)}, model_state + 1)

  def train_batch(step):
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(step), (8, width)))
    scale = np.full((8,), np.nan if step == nan_at_step else 1.0, np.float32)
    return {"x": x, "y": x @ np.asarray(true_w), "scale": scale}

  return train.Task(init=lambda key: ({"w": jnp.zeros((width,))}, jnp.zeros(())), loss_fn=loss_fn,
                    train_batch=train_batch, tokens_per_batch=8)


def test_train_step_is_one_optimizer_update_of_the_loss_gradient():
  task = _regression_task()
  params, model_state = task.init(jax.random.PRNGKey(0))
  state = train.create_train_state(params, optax.adam(0.1), model_state)
  batch = task.train_batch(0)
  s1, m1 = train.make_train_step(task.loss_fn, donate=False)(state, batch, jax.random.PRNGKey(1))
  # At w = 0 the gradient of mean((x w - y)^2) is -2 x^T y / N; Adam's first step is -lr g / (|g| + eps).
  x, y = np.asarray(batch["x"], np.float64), np.asarray(batch["y"], np.float64)
  g = -2 * x.T @ y / len(y)
  np.testing.assert_allclose(s1.params["w"], -0.1 * g / (np.abs(g) + 1e-8), rtol=1e-5)
  np.testing.assert_allclose(m1["loss"], np.mean(y ** 2), rtol=1e-5)
  np.testing.assert_allclose(m1["grad_norm"], np.linalg.norm(g), rtol=1e-5)
  assert int(s1.step) == 1 and float(s1.model_state) == 1.0
  # The unjitted pure function gives the same result as the jitted one.
  s3, _ = train.train_step(task.loss_fn, state, batch, jax.random.PRNGKey(1))
  np.testing.assert_allclose(s3.params["w"], s1.params["w"], rtol=1e-6)


def test_per_step_rng_is_fold_in_of_step():
  seen = []

  def loss_fn(params, model_state, batch, rng, train_mode):
    return jnp.sum(params["w"]) * 0.0, ({"r": jax.random.uniform(rng)}, model_state)

  state = train.create_train_state({"w": jnp.zeros(1)}, optax.sgd(0.1), None)
  step = train.make_train_step(loss_fn, donate=False)
  rng = jax.random.PRNGKey(7)
  for _ in range(2):
    state, m = step(state, {}, rng)
    seen.append(float(m["r"]))
  assert seen == [float(jax.random.uniform(jax.random.fold_in(rng, s))) for s in range(2)]


def test_zaremba_step_schedule_and_optimizer_choices():
  cfg = optim.default_config()
  cfg.update(name="sgd", learning_rate=1.0, schedule="step", decay_after_epochs=4, decay_factor=0.5)
  schedule = optim.make_schedule(cfg, steps_per_epoch=10, total_steps=130)
  assert [float(schedule(e * 10)) for e in range(7)] == [1, 1, 1, 1, 0.5, 0.25, 0.125]
  assert float(schedule(49)) == 0.5
  cfg.update(schedule="warmup_cosine", warmup_steps=10)
  schedule = optim.make_schedule(cfg, 10, 100)
  assert float(schedule(0)) == 0.0 and abs(float(schedule(10)) - 1.0) < 1e-6 and float(schedule(100)) < 1e-6
  for name in optim.OPTIMIZERS:
    cfg.update(name=name, clip_norm=1.0)
    train.make_optimizer(cfg, 10, 100).init({"w": jnp.zeros(2)})
  with pytest.raises(ValueError, match="config.optimizer.name must be one of"):
    cfg.update(name="adamm")
    train.make_optimizer(cfg)


def test_loop_learns_writes_metrics_and_resumes(tmp_path):
  task = _regression_task()
  state = train.train_loop(task, _config(num_steps=60, checkpoint_every=20), str(tmp_path))
  np.testing.assert_allclose(state.params["w"], [1, 2, 3, 4], atol=0.1)
  metrics = train.read_metrics(str(tmp_path))
  assert [m["step"] for m in metrics] == list(range(1, 61))
  assert {"loss", "grad_norm", "mean_pred", "steps_per_s", "tokens_per_s"} <= set(metrics[0])
  assert os.listdir(tmp_path / "tensorboard")
  # Asking for more steps resumes from the last checkpoint (step 60) instead of starting over, and ends
  # exactly where an uninterrupted 62-step run ends.
  seen = []
  recorded = dataclasses.replace(task, train_batch=lambda step: seen.append(step) or task.train_batch(step))
  state2 = train.train_loop(recorded, _config(num_steps=62, checkpoint_every=20), str(tmp_path))
  assert seen == [60, 61]
  assert int(state2.step) == 62 and float(state2.model_state) == 62.0
  straight = train.train_loop(task, _config(num_steps=62, checkpoint_every=20), str(tmp_path / "straight"))
  np.testing.assert_array_equal(state2.params["w"], straight.params["w"])
  assert [m["step"] for m in train.read_metrics(str(tmp_path))] == list(range(1, 63))
  # For evaluation: the latest params alone, into a structure of zeros.
  restored = train.restore_params(str(tmp_path), _config(num_steps=62), {"w": jnp.zeros(4)}, jnp.zeros(()))
  np.testing.assert_array_equal(restored["w"], state2.params["w"])
  with pytest.raises(FileNotFoundError, match="no checkpoint in .*empty"):
    train.restore_params(str(tmp_path / "empty"), _config(), {"w": jnp.zeros(4)}, jnp.zeros(()))


def test_a_finished_run_is_not_trained_again_and_training_further_drops_its_stale_results(tmp_path):
  train.train_loop(_regression_task(), _config(num_steps=4), str(tmp_path))
  train.write_results(str(tmp_path), {"score": 1.5})
  before = {name: (tmp_path / name).read_bytes() for name in ("metrics.jsonl", "config.json", "results.json")}
  config = _config(num_steps=4)
  config.optimizer.learning_rate = 0.2
  with pytest.raises(train.RunFinished, match=r"holds a finished run: all 4 steps trained(.|\n)*differs from the "
                     r"run's config.json in optimizer.learning_rate: not used(.|\n)*\"score\": 1.5") as finished:
    train.train_loop(_regression_task(), config, str(tmp_path))
  assert finished.value.results["score"] == 1.5
  assert {name: (tmp_path / name).read_bytes() for name in before} == before
  train.train_loop(_regression_task(), _config(num_steps=6), str(tmp_path))  # more steps: trains on
  assert not (tmp_path / "results.json").exists()  # they were the results of step 4


def _hparams_in(logdir) -> dict:
  """The hparams (name -> value) of the session-start summaries in `logdir`'s event files."""
  from tensorboardX.proto import event_pb2, plugin_hparams_pb2  # pylint: disable=g-import-not-at-top
  found = {}
  for name in os.listdir(logdir):
    blob = (logdir / name).read_bytes()
    while blob:  # TFRecord framing: length (8 bytes), its CRC (4), the event, its CRC (4)
      length = int.from_bytes(blob[:8], "little")
      event = event_pb2.Event.FromString(blob[12:12 + length])
      blob = blob[16 + length:]
      for value in event.summary.value:
        if value.tag == "_hparams_/session_start_info":
          content = plugin_hparams_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
          for key, hparam in content.session_start_info.hparams.items():
            found[key] = getattr(hparam, hparam.WhichOneof("kind"))
  return found


def test_run_config_is_written_as_tensorboard_hparams(tmp_path):
  config = _config(num_steps=2)
  config.tags = ("a", "b")
  train.train_loop(_regression_task(), config, str(tmp_path))
  written = _hparams_in(tmp_path / "tensorboard")
  assert written["optimizer.name"] == "sgd" and written["optimizer.learning_rate"] == pytest.approx(0.1)
  assert written["num_steps"] == 2 and written["tags"] == "('a', 'b')"


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  with pytest.raises(train.NonFiniteLossError, match=r"non-finite loss = nan at step 4.*step 2"):
    train.train_loop(_regression_task(nan_at_step=3), _config(), str(tmp_path))
  assert train.Checkpointer(str(tmp_path / "checkpoints")).latest_step() == 2


def test_a_failing_evaluation_loses_no_training_steps(tmp_path):
  task = dataclasses.replace(_regression_task(), evaluate=lambda params: {"valid": 1 / 0})
  with pytest.raises(ZeroDivisionError):
    train.train_loop(task, _config(checkpoint_every=3), str(tmp_path))
  assert train.Checkpointer(str(tmp_path / "checkpoints")).latest_step() == 3  # the first evaluation's step


def test_corrupt_or_incompatible_checkpoint_gives_clear_error(tmp_path):
  train.train_loop(_regression_task(), _config(num_steps=4), str(tmp_path))
  with pytest.raises(train.CheckpointError, match=r"cannot restore checkpoint step 4 in .*checkpoints.*incompatible"
                     r".*state/params/w: stored float32\(4,\), this run float32\(5,\)"):
    train.train_loop(_regression_task(width=5), _config(num_steps=6), str(tmp_path))
  # Corrupt every file of the latest checkpoint: a clear error, nothing overwritten or deleted.
  latest = tmp_path / "checkpoints" / "4"
  for root, _, files in os.walk(latest):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"garbage")
  with pytest.raises(train.CheckpointError, match=str(tmp_path / "checkpoints")):
    train.train_loop(_regression_task(), _config(num_steps=6), str(tmp_path))
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4"]


def test_bad_loop_config_is_named():
  with pytest.raises(ValueError, match="config.log_every must be a positive integer"):
    train.train_loop(_regression_task(), _config(log_every=0), "/tmp/unused")
  with pytest.raises(ValueError, match=r"config.divergence_factor must be above 1 \(or 0: never stop\), got 0.5"):
    train.train_loop(_regression_task(), _config(divergence_factor=0.5), "/tmp/unused")


def test_four_devices_give_the_same_losses_as_one(tmp_path):
  script = textwrap.dedent(f"""
      import os, sys, json
      sys.path.insert(0, {REPO!r})
      import jax
      assert jax.device_count() == 4, jax.devices()
      from tests.test_train import _config, _regression_task
      from rnn_jax import train
      out = {{}}
      for n in (1, 4):
        train.train_loop(_regression_task(), _config(num_steps=5), os.path.join({str(tmp_path)!r}, str(n)), num_devices=n)
        out[n] = [m["loss"] for m in train.read_metrics(os.path.join({str(tmp_path)!r}, str(n)))]
      print(json.dumps(out))
  """)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
  result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  import json
  losses = json.loads(result.stdout.strip().splitlines()[-1])
  assert len(losses["1"]) == 5
  np.testing.assert_allclose(losses["4"], losses["1"], rtol=1e-5, atol=1e-6)


def test_reading_a_workdir_read_only_logs_nothing(tmp_path, caplog):
  """Restoring a trained workdir (eval, sample, notebooks) shows no orbax warnings about its read-only mode."""
  train.Checkpointer(str(tmp_path / "checkpoints")).save(3, {"w": jnp.ones(2)}, jax.random.PRNGKey(0))
  with caplog.at_level("INFO"):
    assert train.Checkpointer(str(tmp_path / "checkpoints"), read_only=True).latest_step() == 3
  assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.text
