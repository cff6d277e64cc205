"""Clockwork RNN vs LSTM vs tanh RNN generating a waveform from no input: models, training, plot.

Each network reads zeros for `length` steps and must emit the target waveform through a
linear readout; it is trained on that one sequence (full batch, Adam, gradient clipping)
and scored by the normalised MSE `mean((y - d)^2) / var(d)` (1.0 for the zero output).
Launcher: experiments/clockwork/main.py.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnn_jax import cells, scan, train
from rnn_jax.train import optim

MODELS = ("clockwork", "lstm", "elman")


def target_waveform(length: int, seed: int = 0) -> np.ndarray:
  """`[length]` in [-1, 1]: four sinusoids (periods 6 to `length / 2` steps) under a slow envelope."""
  rng = np.random.RandomState(seed)
  t = np.arange(length)
  periods = np.exp(rng.uniform(np.log(6.0), np.log(length / 2.0), size=4))
  amplitudes = rng.uniform(0.3, 1.0, size=4)
  phases = rng.uniform(0.0, 2.0 * np.pi, size=4)
  wave = np.sum(amplitudes[:, None] * np.sin(2.0 * np.pi * t[None, :] / periods[:, None] + phases[:, None]), 0)
  wave = wave * (0.6 + 0.4 * np.sin(np.pi * t / length))
  wave = wave - wave.mean()
  return (wave / np.max(np.abs(wave))).astype(np.float32)


def make_cell(model: str, periods=None):
  return cells.get("clockwork", periods=tuple(periods)) if model == "clockwork" else cells.get(model)


def num_params(model: str, hidden_size: int, periods=None) -> int:
  """Trainable parameters for a 1-wide input, readout included (clockwork: unmasked weights only)."""
  readout = hidden_size + 1
  if model == "clockwork":
    return make_cell(model, periods).num_trainable_params(1, hidden_size) + readout
  params = make_cell(model).init(jax.random.key(0), 1, hidden_size)
  return sum(int(np.size(leaf)) for leaf in jax.tree.leaves(params)) + readout


def init_params(cell, hidden_size: int, key: jax.Array) -> dict:
  """The cell's params for a 1-wide input (`rnn`) and a linear readout (`w_out [H]`, `b_out []`)."""
  k_cell, k_out = jax.random.split(key)
  return {"rnn": cell.init(k_cell, 1, hidden_size),
          "w_out": jax.random.normal(k_out, (hidden_size,)) / np.sqrt(hidden_size), "b_out": jnp.zeros(())}


def emit_waveform(cell, params, batch: int, length: int) -> jax.Array:
  """`[batch, length]`: the readout of the network run on zero inputs."""
  _, ys_BxTxH = scan.run(cell, params["rnn"], jnp.zeros((batch, length, 1)))
  return ys_BxTxH @ params["w_out"] + params["b_out"]


def nmse(cell, params, target_BxT: jax.Array, variance: float) -> jax.Array:
  """`mean((y - d)^2) / var(d)` of the emitted waveform against `target_BxT` (1.0 for a zero output);
  `variance` is the target's, computed once by the caller rather than in every training step."""
  emitted_BxT = emit_waveform(cell, params, *target_BxT.shape)
  return jnp.mean(jnp.square(emitted_BxT - target_BxT)) / variance


def make_optimizer(learning_rate: float = 3e-3) -> optax.GradientTransformation:
  """Adam after clipping the global gradient norm to 1."""
  return train.make_optimizer(optim.default_config(learning_rate=learning_rate, clip_norm=1.0))


def train_one(model: str, target_T: np.ndarray, *, hidden_size: int, periods=None, steps=3000,
              learning_rate=3e-3, seed=0) -> dict:
  """Fits `model` to emit `target_T` from zero inputs; returns the NMSE and the emitted sequence."""
  cell = make_cell(model, periods)
  params = init_params(cell, hidden_size, jax.random.key(seed))
  target_1xT = jnp.asarray(target_T)[None]
  loss_fn = functools.partial(nmse, cell, target_BxT=target_1xT, variance=float(np.var(target_T)))
  optimizer = make_optimizer(learning_rate)

  chunk = math.gcd(steps, 100)  # steps per jitted call

  @jax.jit
  def train_steps(params, opt_state):
    def body(state, _):
      params, opt_state = state
      loss, grads = jax.value_and_grad(loss_fn)(params)
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss
    return jax.lax.scan(body, (params, opt_state), None, length=chunk)

  state, losses = (params, optimizer.init(params)), []
  for _ in range(steps // chunk):
    state, chunk = train_steps(*state)
    losses.append(np.asarray(chunk))
  params = state[0]
  return {"model": model, "hidden_size": hidden_size, "seed": seed, "nmse": float(loss_fn(params)),
          "num_params": num_params(model, hidden_size, periods),
          "loss_curve": np.concatenate(losses)[::50].tolist(),
          "output": np.asarray(emit_waveform(cell, params, 1, len(target_T))[0]).tolist()}


def plot(target_T, runs: list, path: str) -> None:
  """Target and each model's best output, and the training curves."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  models = [m for m in MODELS if any(r["model"] == m for r in runs)]
  fig, axes = plt.subplots(len(models) + 1, 1, figsize=(9, 2.2 * (len(models) + 1)))
  for ax, model in zip(axes, models):
    best = min((r for r in runs if r["model"] == model), key=lambda r: r["nmse"])
    ax.plot(target_T, "k-", lw=1.5, label="target")
    ax.plot(best["output"], "r-", lw=1, label=f"{model} ({best['num_params']} params)")
    ax.set_title(f"{model}: best NMSE {best['nmse']:.2g}", fontsize=9)
    ax.legend(loc="upper right", fontsize=7)
  for model in models:
    for r in runs:
      if r["model"] == model:
        axes[-1].semilogy(np.arange(len(r["loss_curve"])) * 50, r["loss_curve"],
                          color={"clockwork": "C0", "lstm": "C1", "elman": "C2"}[model], alpha=0.7,
                          label=model if r["seed"] == min(x["seed"] for x in runs if x["model"] == model) else None)
  axes[-1].set_xlabel("training step")
  axes[-1].set_ylabel("training NMSE")
  axes[-1].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
