"""Handwriting models as pure functions: a BLSTM-CTC recogniser and Graves' (2013) MDN generator.

Recogniser: `[B, T, 3]` points -> (optional frame stacking by `subsample`) -> stacked
bidirectional cell (`rnn_jax.scan.run_stack`, padding-aware) -> `[B, T', V]` logits for CTC.

Generator: one `GravesStack` cell run by `rnn_jax.scan.run`: L stacked cells where every
layer also sees the input (skip connections), and, when conditional, the soft Gaussian
window over the text after the first layer (Graves 2013, figs. 1 and 12). A dense layer
reads all layers' outputs and gives the `6M + 1` mixture-density parameters.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from rnn_jax import cells, layers, mdn, ops, scan
from rnn_jax.cells import base, stack


# ------------------------------------------------------------------ recognition


def init_recognizer(key, cfg, num_classes: int):
  """Params `{"rnn": run_stack params, "out": dense}` for `cfg` (config.model)."""
  cell = cells.from_config(cfg)
  k_rnn, k_out = jax.random.split(key)
  return {"rnn": scan.init_stack(k_rnn, cell, 3 * cfg.subsample, cfg.hidden_size, cfg.num_layers, bidirectional=True),
          "out": layers.dense_init(k_out, 2 * cfg.hidden_size, num_classes)}


def recognizer_logits(params, cfg, points_BxTx3, lengths_B, dropout_rng=None):
  """`(logits_BxT'xV, lengths_B')`; frames past each length are padding."""
  x_BxTxF, lengths = scan.stack_frames(points_BxTx3, lengths_B, cfg.subsample)
  rate = cfg.dropout if dropout_rng is not None else 0.0
  _, ys_BxTx2H = scan.run_stack(cells.from_config(cfg), params["rnn"], x_BxTxF, lengths=lengths, bidirectional=True,
                                dropout_rate=rate, dropout_rng=dropout_rng)
  return layers.dense(params["out"], ys_BxTx2H), lengths


# ------------------------------------------------------------------ generation


@dataclasses.dataclass(frozen=True)
class GravesStack(cells.WithCell, base.Cell):
  """Stacked cells with skip connections and an optional soft window (one time step per `recur`).

  Params: `{"layers": [inner cell params], "window": dense [H, 3K]}` (window only when
  `window_components > 0`); for a conditional run also `"text": [B, U, C]` one-hot
  characters, added by `bind_text`. Carry: `(layer carries, kappa_BxK, w_BxC)` (the last
  two zero-sized when unconditional). Output: `[h_1 .. h_L]` concatenated (`[B, L*H]`),
  then `phi_BxU` when conditional.
  Layer 1 reads `[x, w_{t-1}]`, layer l > 1 reads `[x, h_{l-1}, w_t]`.
  """

  cell: str = "lstm"
  num_layers: int = 3
  window_components: int = 0
  alphabet_size: int = 0
  kappa_step: float = 0.05   # initial mean advance of the window per step (characters)
  name = "graves_stack"

  @property
  def conditional(self) -> bool:
    return self.window_components > 0

  def _text_size(self):
    return self.alphabet_size if self.conditional else 0

  def init(self, key, input_size, hidden_size):
    keys = jax.random.split(key, self.num_layers + 1)
    c = self._text_size()
    params = {"layers": [self.pure_cell.init(keys[l], input_size + c + (hidden_size if l else 0), hidden_size)
                         for l in range(self.num_layers)]}
    if self.conditional:
      k = self.window_components
      bias = jnp.concatenate([jnp.zeros((2 * k,)), jnp.full((k,), jnp.log(self.kappa_step))])
      params["window"] = {"w": 0.1 * layers.glorot_uniform(keys[-1], (hidden_size, 3 * k)), "b": bias}
    return params

  def initial_carry(self, params, batch_shape):
    carries = tuple(self.pure_cell.initial_carry(p, batch_shape) for p in params["layers"])
    return (carries, jnp.zeros((*batch_shape, self.window_components)), jnp.zeros((*batch_shape, self._text_size())))

  def input_size(self, params):
    return self.pure_cell.input_size(params["layers"][0]) - self._text_size()

  def hidden_size(self, params):
    return self.pure_cell.hidden_size(params["layers"][0])

  def output_size(self, params):
    return self.num_layers * self.hidden_size(params)

  def project(self, params, x):
    return x

  def recur(self, params, carry, x_BxI):
    layer_carries, kappa, w = carry
    cell, layer_params, phi = self.pure_cell, params["layers"], []
    window = [w] if self.conditional else []
    first, hs = stack.step_stack(cell, layer_params[:1], layer_carries[:1], x_BxI, after=window)
    if self.conditional:
      w, phi_BxU, kappa = mdn.window(layers.dense(params["window"], hs[0]), kappa, params["text"])
      window, phi = [w], [phi_BxU]
    rest, upper = stack.step_stack(cell, layer_params[1:], layer_carries[1:], hs[0], before=[x_BxI], after=window)
    return (tuple(first + rest), kappa, w), jnp.concatenate(hs + upper + phi, axis=-1)


def bind_text(params, text_BxUxC: jax.Array):
  """The generator's params with the one-hot text the window reads."""
  return {**params, "rnn": {**params["rnn"], "text": text_BxUxC}}


def make_generator(cfg, alphabet_size: int) -> GravesStack:
  return GravesStack(cell=cfg.cell, num_layers=cfg.num_layers, window_components=cfg.window_components,
                     alphabet_size=alphabet_size, kappa_step=cfg.kappa_step, matmul_dtype=cfg.get("matmul_dtype"))


def init_generator(key, cfg, alphabet_size: int):
  stack = make_generator(cfg, alphabet_size)
  k_rnn, k_out = jax.random.split(key)
  return {"rnn": stack.init(k_rnn, 3, cfg.hidden_size),
          "out": layers.dense_init(k_out, cfg.num_layers * cfg.hidden_size, mdn.num_outputs(cfg.num_mixtures))}


def _split_output(stack: GravesStack, params, ys):
  width = stack.output_size(params["rnn"])
  return ys[..., :width], ys[..., width:]


def generator_outputs(params, cfg, alphabet_size: int, inputs_BxTx3, lengths_B):
  """`(mdn outputs [B, T, 6M+1], phi [B, T, U] or [B, T, 0])` with teacher forcing (params text-bound)."""
  stack = make_generator(cfg, alphabet_size)
  _, ys = scan.run(stack, params["rnn"], inputs_BxTx3, lengths=lengths_B, hoist=False)
  hidden, phi = _split_output(stack, params, ys)
  return layers.dense(params["out"], hidden), phi


def shift_inputs(points_BxTx3: jax.Array) -> jax.Array:
  """Teacher-forcing inputs: a zero point, then the points up to T-1."""
  return jnp.pad(points_BxTx3, ((0, 0), (1, 0), (0, 0)))[:, :-1]


def generator_nll(params, cfg, alphabet_size: int, points_BxTx3, lengths_B):
  """`(sum of NLL over valid points, number of valid points)`."""
  y, _ = generator_outputs(params, cfg, alphabet_size, shift_inputs(points_BxTx3), lengths_B)
  nll_BxT = mdn.nll(mdn.split(y, cfg.num_mixtures), points_BxTx3)
  mask_BxT = ops.mask_from_lengths(lengths_B, points_BxTx3.shape[1])
  return jnp.sum(jnp.where(mask_BxT, nll_BxT, 0.0)), jnp.sum(mask_BxT)


def sample(params, cfg, alphabet_size: int, key, batch_size: int, num_steps: int, bias: float = 0.0) -> Any:
  """Writes `num_steps` points per row by feeding each drawn point back in (params text-bound if conditional).

  Returns `(points_BxSx3, phi_BxSxU)` in the normalised units the model was trained in.
  """
  stack = make_generator(cfg, alphabet_size)
  carry = stack.initial_carry(params["rnn"], (batch_size,))

  def body(state, step_key):
    carry, x_Bx3 = state
    carry, y = stack.step(params["rnn"], carry, x_Bx3)
    hidden, phi = _split_output(stack, params, y)
    mixture = mdn.split(layers.dense(params["out"], hidden), cfg.num_mixtures, bias=bias)
    x_Bx3 = mdn.sample(step_key, mixture)
    return (carry, x_Bx3), (x_Bx3, phi)

  _, (points_SxBx3, phi_SxBxU) = jax.lax.scan(body, (carry, jnp.zeros((batch_size, 3))),
                                              jax.random.split(key, num_steps))
  return jnp.swapaxes(points_SxBx3, 0, 1), jnp.swapaxes(phi_SxBxU, 0, 1)
