"""Echo-state networks (Jaeger & Haas 2004, "Harnessing nonlinearity").

A fixed random reservoir is driven by the inputs (and, optionally, by its own
output fed back); only a linear readout is trained, in closed form by ridge
regression.

  cell = cells.get("reservoir", spectral_radius=0.8, connectivity=0.01, feedback_size=O)
  params = cell.init(key, I + O, N)                                    # host-side: eigenvalues
  carry, states_BxTxN = reservoir.teacher_forced_states(cell, params, d_BxTxO, u_BxTxI)
  w_FxO = reservoir.fit_readout(reservoir.features(states_BxTxN, u_BxTxI)[:, washout:],
                                d_BxTxO[:, washout:], ridge)
  _, y_BxSxO = reservoir.generate(cell, params, w_FxO, carry, d_BxTxO[:, -1], u_next_BxSxI)

Reservoir update (leak rate `a`, `x` the cell input = external input then fed-back output):

  h(t) = (1 - a) h(t-1) + a tanh(x(t) W_x + b + h(t-1) W_h)
  y(t) = [1, u(t), h(t)] W_out                      (u: external input; may be absent)

During training the fed-back output is the teacher's `d(t-1)`; when generating it is
the network's own `y(t-1)`. Collecting states is one `lax.scan` over `cell.recur` with the input
projection hoisted out of it (no lengths, no fast path: the runner would add nothing); generation is
an autoregressive `lax.scan` over `cell.step`.
Ridge solves need float64 for large reservoirs: run under `jax.enable_x64(True)`,
where every array this module creates is float64.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.cells import base


def spectral_radius(w_NxN) -> float:
  """Largest eigenvalue modulus, computed on the host in float64."""
  return float(np.max(np.abs(np.linalg.eigvals(np.asarray(w_NxN, np.float64)))))


@dataclasses.dataclass(frozen=True)
class Reservoir(base.Cell):
  """Leaky tanh reservoir with fixed sparse random weights (an untrained `Cell`).

  spectral_radius: the largest |eigenvalue| of `W_h` after scaling (< 1 for echo states
    without feedback; with leak `a` the effective matrix is `(1 - a) I + a W_h`).
  connectivity: fraction of nonzero entries of `W_h`, drawn U(-1, 1) (Jaeger used 1 %).
  input_scaling: input weights are U(-input_scaling, input_scaling), dense.
  feedback_size: the last `feedback_size` input channels are fed-back outputs; their
    weights are U(-feedback_scaling, feedback_scaling).
  bias_scaling: the bias is U(-bias_scaling, bias_scaling) (a constant bias input).
  leak_rate: `a` in (0, 1]; 1 is the standard (non-leaky) ESN.
  Params: `w_x [I, N]`, `w_h [N, N]` (dense storage of a sparse matrix), `b [N]`. Carry: `h [..., N]`.
  `init` runs on the host (it computes eigenvalues), not under `jit`.
  """

  spectral_radius: float = 0.8
  connectivity: float = 0.01
  input_scaling: float = 1.0
  feedback_size: int = 0
  feedback_scaling: float = 1.0
  bias_scaling: float = 0.0
  leak_rate: float = 1.0
  name = "reservoir"  # params_match_init stays False: `init` runs on the host

  def __post_init__(self):
    super().__post_init__()
    if not 0.0 < self.connectivity <= 1.0:
      raise ValueError(f"connectivity must be in (0, 1], got {self.connectivity}")
    if not 0.0 < self.leak_rate <= 1.0:
      raise ValueError(f"leak_rate must be in (0, 1], got {self.leak_rate}")

  def init(self, key, input_size, hidden_size):
    if not 0 <= self.feedback_size <= input_size:
      raise ValueError(f"feedback_size {self.feedback_size} exceeds the input size {input_size}")
    k_mask, k_w, k_x, k_b = jax.random.split(key, 4)
    mask_NxN = jax.random.uniform(k_mask, (hidden_size, hidden_size)) < self.connectivity
    w_NxN = jnp.where(mask_NxN, jax.random.uniform(k_w, (hidden_size, hidden_size), minval=-1.0), 0.0)
    rho = spectral_radius(w_NxN)
    if rho == 0.0:
      raise ValueError(f"reservoir of {hidden_size} units at connectivity {self.connectivity} drew a nilpotent "
                       "matrix (spectral radius 0); raise connectivity or size")
    num_inputs = input_size - self.feedback_size
    scale_I = jnp.concatenate([jnp.full((num_inputs,), self.input_scaling),
                               jnp.full((self.feedback_size,), self.feedback_scaling)])
    return {
        "w_x": jax.random.uniform(k_x, (input_size, hidden_size), minval=-1.0) * scale_I[:, None],
        "w_h": w_NxN * (self.spectral_radius / rho),
        "b": self.bias_scaling * jax.random.uniform(k_b, (hidden_size,), minval=-1.0),
    }

  def recur(self, params, h, z):
    h = h + self.leak_rate * (jnp.tanh(z + self.matmul(h, params["w_h"])) - h)
    return h, h


def features(states_xN: jax.Array, inputs_xI: jax.Array | None = None) -> jax.Array:
  """The readout's regressors `[1, u, h]`: `[..., 1 + I + N]` (`u` omitted when None)."""
  parts = [jnp.ones(states_xN.shape[:-1] + (1,), states_xN.dtype)]
  if inputs_xI is not None:
    parts.append(inputs_xI.astype(states_xN.dtype))
  return jnp.concatenate(parts + [states_xN], axis=-1)


@jax.jit
def fit_readout(features_xF: jax.Array, targets_xO: jax.Array, ridge: float) -> jax.Array:
  """Ridge regression in closed form: `W = (X^T X + ridge I)^-1 X^T Y`, `[F, O]`.

  Leading axes of `features_xF` (`[..., F]`) and `targets_xO` (`[..., O]`) are
  flattened into samples. All weights, the bias column included, are penalised.
  """
  x_SxF = features_xF.reshape(-1, features_xF.shape[-1])
  y_SxO = targets_xO.reshape(-1, targets_xO.shape[-1]).astype(x_SxF.dtype)
  gram_FxF = x_SxF.T @ x_SxF + ridge * jnp.eye(x_SxF.shape[-1], dtype=x_SxF.dtype)
  return jnp.linalg.solve(gram_FxF, x_SxF.T @ y_SxO)


def readout(w_FxO: jax.Array, states_xN: jax.Array, inputs_xI: jax.Array | None = None) -> jax.Array:
  """Outputs `[..., O]` of the trained readout."""
  return features(states_xN, inputs_xI) @ w_FxO


def _states(cell: Reservoir, params, xs_BxTxI: jax.Array, initial_carry=None):
  """`(final_carry, states_BxTxN)` of the reservoir driven by `xs_BxTxI` from `initial_carry` (zeros if None)."""
  carry = cell.initial_carry(params, xs_BxTxI.shape[:1]) if initial_carry is None else initial_carry
  z_TxBxN = cell.project(params, jnp.swapaxes(xs_BxTxI, 0, 1))
  carry, states_TxBxN = jax.lax.scan(lambda c, z_BxN: cell.recur(params, c, z_BxN), carry, z_TxBxN)
  return carry, jnp.swapaxes(states_TxBxN, 0, 1)


def _cell_inputs(inputs_BxTxI, feedback_BxTxO):
  if inputs_BxTxI is None:
    return feedback_BxTxO
  return jnp.concatenate([inputs_BxTxI.astype(feedback_BxTxO.dtype), feedback_BxTxO], axis=-1)


@functools.partial(jax.jit, static_argnames=("cell",))
def teacher_forced_states(cell: Reservoir, params, targets_BxTxO: jax.Array,
                          inputs_BxTxI: jax.Array | None = None, initial_carry=None,
                          initial_feedback_BxO: jax.Array | None = None):
  """Drives the reservoir with the teacher's outputs fed back (one step late).

  Step t sees `[u(t), d(t-1)]`, with `d(-1) = initial_feedback_BxO` (zeros if None),
  so `states[:, t]` is what the readout maps to `d(t)`. `cell.feedback_size` must be `O`;
  a reservoir without feedback is driven by `driven_states`.
  Returns `(final_carry, states_BxTxN)`.
  """
  if cell.feedback_size != targets_BxTxO.shape[-1]:
    raise ValueError(f"cell.feedback_size={cell.feedback_size} but the targets have "
                     f"{targets_BxTxO.shape[-1]} channels")
  if initial_feedback_BxO is None:
    initial_feedback_BxO = jnp.zeros_like(targets_BxTxO[:, 0])
  feedback_BxTxO = jnp.concatenate([initial_feedback_BxO[:, None], targets_BxTxO[:, :-1]], axis=1)
  return _states(cell, params, _cell_inputs(inputs_BxTxI, feedback_BxTxO), initial_carry)


def driven_states(cell: Reservoir, params, inputs_BxTxI: jax.Array, initial_carry=None):
  """States of a reservoir without feedback driven by `inputs_BxTxI`: `(carry, states_BxTxN)`."""
  if cell.feedback_size:
    raise ValueError("this reservoir has output feedback: use teacher_forced_states")
  return _states(cell, params, inputs_BxTxI, initial_carry)


@functools.partial(jax.jit, static_argnames=("cell", "steps"))
def generate(cell: Reservoir, params, w_FxO: jax.Array, carry, last_output_BxO: jax.Array,
             inputs_BxSxI: jax.Array | None = None, steps: int | None = None):
  """Free-running generation: the network's own output is fed back.

  Args:
    carry: the reservoir state after the last teacher-forced step (`h(t0)`).
    last_output_BxO: the output at `t0` (the teacher's `d(t0)` after a teacher-forced run).
    inputs_BxSxI: external inputs for the `S` generated steps, or None (then pass `steps`).
  Returns:
    `(carry, ys_BxSxO)`: outputs `y(t0 + 1) ... y(t0 + S)`.
  """
  if inputs_BxSxI is None:
    if steps is None:
      raise ValueError("generate needs inputs_BxSxI or steps")
    inputs_SxBxI = jnp.zeros((steps, last_output_BxO.shape[0], 0), last_output_BxO.dtype)
  elif steps is not None and steps != inputs_BxSxI.shape[1]:
    raise ValueError(f"generate got steps={steps} and inputs for {inputs_BxSxI.shape[1]} steps: pass one")
  else:
    inputs_SxBxI = jnp.swapaxes(inputs_BxSxI, 0, 1)
  has_inputs = inputs_BxSxI is not None

  def body(state, u_BxI):
    carry, y_BxO = state
    x_BxX = jnp.concatenate([u_BxI.astype(y_BxO.dtype), y_BxO], axis=-1)
    carry, h_BxN = cell.step(params, carry, x_BxX)
    y_BxO = readout(w_FxO, h_BxN, u_BxI if has_inputs else None)
    return (carry, y_BxO), y_BxO

  (carry, _), ys_SxBxO = jax.lax.scan(body, (carry, last_output_BxO), inputs_SxBxI)
  return carry, jnp.swapaxes(ys_SxBxO, 0, 1)


def nrmse(predictions: jax.Array, targets: jax.Array, variance: float | jax.Array) -> jax.Array:
  """Normalised root-mean-square error `sqrt(mean((y - d)^2) / variance)` (Jaeger's NRMSE)."""
  return jnp.sqrt(jnp.mean(jnp.square(predictions - targets)) / variance)
