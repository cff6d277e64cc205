"""The runner: every sequence in rnn_jax goes through `run`, one `jax.lax.scan`.

  carry, ys = run(cell, params, xs_BxTxI, lengths=lengths_B)              # one layer
  carries, ys = run_bidirectional(cell, {"forward": p, "backward": q}, xs)   # two directions
  carries, ys = run_stack(cell, [p0, p1, ...], xs, bidirectional=..., residual=...)

Shared options (all static except `lengths` and carries):
  time_major: `xs` is `[T, B, I]` (and `ys` `[T, B, H]`) instead of `[B, T, I]`.
  lengths:    `[B]` ints for right-padded batches. Steps `t >= lengths[b]` leave the
              carry unchanged and output zeros, so the final carry is the one at each
              sequence's own last step. `reverse=True` with lengths starts each
              sequence at its own last valid step (padded steps come first and are
              no-ops), so reverse and bidirectional runs are padding-aware.
  unroll:     passed to `lax.scan`. > 4 costs compile time and backward speed.
  remat:      recompute the forward in the backward pass instead of storing activations.
              Autodiff: `jax.checkpoint` the step, keeping the carries of every step.
              Fused: `jax.checkpoint` chunks of about sqrt(T) steps, keeping one carry per
              chunk and one chunk's residuals at a time (`fused.remat_chunks`).
  hoist:      compute the input projection `x W_x + b` for all steps in one matmul
              before the scan (True), inside each step (False), or choose (None, see
              `fused.policy.hoist_by_default`).
  backward:   "autodiff" differentiates the scan; "fused" runs the hoisted recurrence
              through `rnn_jax.fused` (a hand-written VJP, up to 2x faster fwd+bwd;
              LSTM without layer norm, GRU, Elman; raises otherwise);
              "auto" (default) takes "fused" where `policy.fused_by_default` allows it and
              `hoist` is not False. Same values and gradients either way, but a fused
              run has no forward-mode derivative (jax.jvp/jacfwd): use "autodiff" there, and
              no `matmul_dtype` (the mixed matmul has a custom VJP too).
              "cudnn" runs the whole layer (forward and backward) through cuDNN
              (`rnn_jax.fused.cudnn`: the plain float32 LSTM on a CUDA GPU; raises otherwise;
              `unroll` and `hoist` do not apply); "auto" takes it on GPU where
              `policy.cudnn_pays` says it is the faster layer. Values and gradients equal the scan's.
              An undifferentiated fused LSTM call with `hoist=None` runs the per-step
              layout where `policy.hoist_by_default` says not to hoist (the faster forward there,
              `policy.per_step_forward_pays`); gradients use the hoisted kernel.
  Every speed choice of the runner lives in `rnn_jax.fused.policy`, keyed by backend.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import fused, ops
from rnn_jax.cells import check_params
from rnn_jax.cells.base import Cell
from rnn_jax.fused import cudnn, policy

Params = Any
Carry = Any


def _padding_mask(lengths_B, ys, time_major):
  """`[B, T, 1]` (or `[T, B, 1]`) boolean, True on valid steps."""
  steps = ys.shape[0] if time_major else ys.shape[1]
  valid_BxT = ops.mask_from_lengths(lengths_B, steps)
  return (valid_BxT.T if time_major else valid_BxT)[..., None]


def _check_inputs(cell: Cell, params, xs, initial_carry, lengths, time_major):
  """Trace-time validation with messages that name expected and actual values."""
  if not isinstance(cell, Cell):
    raise ValueError(f"expected a Cell (e.g. rnn_jax.cells.get('lstm')), got {type(cell).__name__}")
  if isinstance(params, (list, tuple)):
    raise ValueError(f"params is a sequence of {len(params)} layers' params: run a stack with run_stack")
  if isinstance(params, dict) and set(params) == {"forward", "backward"}:
    raise ValueError("params hold a forward and a backward cell: run them with run_bidirectional")
  check_params(cell, params)
  if xs.ndim != 3:
    layout = "[T, B, I]" if time_major else "[B, T, I]"
    raise ValueError(f"inputs must have rank 3 {layout}, got shape {tuple(xs.shape)} (rank {xs.ndim})")
  input_size = cell.input_size(params)
  if xs.shape[-1] != input_size:
    raise ValueError(f"input feature size {xs.shape[-1]} does not match the cell's input size {input_size} "
                     f"(inputs shape {tuple(xs.shape)})")
  batch, steps = (xs.shape[1], xs.shape[0]) if time_major else (xs.shape[0], xs.shape[1])
  if initial_carry is not None:
    expected = jax.eval_shape(lambda p: cell.initial_carry(p, (batch,)), params)
    exp_desc = jax.tree.map(lambda a: tuple(a.shape), expected)
    got_desc = jax.tree.map(lambda a: tuple(jnp.shape(a)), initial_carry)
    if jax.tree.structure(expected) != jax.tree.structure(initial_carry) or exp_desc != got_desc:
      raise ValueError(f"initial carry does not match cell {cell.name!r} for batch {batch}: "
                       f"expected shapes {exp_desc}, got {got_desc}")
  if lengths is not None:
    if jnp.shape(lengths) != (batch,):
      raise ValueError(f"lengths must have shape ({batch},) to match the batch, got {jnp.shape(lengths)}")
    if not jnp.issubdtype(jnp.result_type(lengths), jnp.integer):
      raise ValueError(f"lengths must be integers, got dtype {jnp.result_type(lengths)}")
    try:  # concrete lengths (also when closed over by a jit) are checked on the host; traced ones cannot be
      lengths_np = np.asarray(lengths)
    except jax.errors.TracerArrayConversionError:
      lengths_np = None
    if lengths_np is not None:
      lo, hi = int(lengths_np.min()), int(lengths_np.max())
      if lo < 0 or hi > steps:
        raise ValueError(f"lengths must lie in [0, {steps}] (the number of steps), got min {lo}, max {hi}")
  return batch, steps


BACKWARDS = ("auto", "autodiff", "fused", "cudnn")  # `run`'s `backward` values


def _implementation(cell: Cell, params: Params, backward: str, hoist: bool | None, remat: bool, batch: int,
                    steps: int) -> str:
  """Which layer `run` runs: "cudnn", "fused" or "scan" (raises for a `backward` the cell cannot take)."""
  if backward not in BACKWARDS:
    raise ValueError(f"backward must be one of {BACKWARDS}, got {backward!r}")
  if backward == "cudnn":
    reason = cudnn.unsupported_reason(cell, params, remat)
    if reason is None and jax.default_backend() != "gpu":
      reason = f"it needs a CUDA GPU (the default backend is {jax.default_backend()!r})"
    if reason is not None:
      raise ValueError(f"backward='cudnn' is not available for cell {cell.name!r}: {reason}")
    return "cudnn"
  if (backward == "auto" and hoist is not False and jax.default_backend() == "gpu"
      and cudnn.unsupported_reason(cell, params, remat) is None
      and policy.cudnn_pays(batch, cell.hidden_size(params), steps)):
    return "cudnn"
  reason = fused.unsupported_reason(cell)
  auto_fused = backward == "auto" and hoist is not False and policy.fused_by_default(cell, reason is None)
  if backward == "fused" or auto_fused:
    reason = "it needs hoist=True or None" if hoist is False else reason
    if reason is not None:
      raise ValueError(f"backward='fused' is not available for cell {cell.name!r}: {reason}")
    return "fused"
  return "scan"


def run(cell: Cell, params: Params, xs: jax.Array, *, initial_carry: Carry = None,
        lengths: jax.Array | None = None, reverse: bool = False, time_major: bool = False,
        unroll: int = 1, remat: bool = False, hoist: bool | None = None, backward: str = "auto"):
  """Runs `cell` over a sequence: one layer, one direction.

  Args:
    xs: `[B, T, I]` (or `[T, B, I]` if `time_major`).
    initial_carry: the carry for batch `(B,)`; zeros if None.
    lengths: optional `[B]` valid lengths of right-padded sequences.
  Returns:
    `(final_carry, ys)` with `ys` `[B, T, H]` (or `[T, B, H]`); padded steps are zero.
  """
  lengths = None if lengths is None else jnp.asarray(lengths)
  batch, steps = _check_inputs(cell, params, xs, initial_carry, lengths, time_major)
  carry = cell.initial_carry(params, (batch,)) if initial_carry is None else initial_carry
  implementation = _implementation(cell, params, backward, hoist, remat, batch, steps)
  if implementation == "cudnn":
    carry, ys_BxTxH = cudnn.run(params, jnp.swapaxes(xs, 0, 1) if time_major else xs, carry, lengths=lengths,
                                reverse=reverse)
    return carry, (jnp.swapaxes(ys_BxTxH, 0, 1) if time_major else ys_BxTxH)
  xs_TxBxI = xs if time_major else jnp.swapaxes(xs, 0, 1)
  if implementation == "fused":
    # Undifferentiated calls may take the per-step layout where it is the faster forward.
    hidden = cell.hidden_size(params)
    per_step = (hoist is None and not policy.hoist_by_default(hidden)
                and policy.per_step_forward_pays(cell, batch, hidden))
    carry, ys_TxBxH = fused.run(cell, params, xs_TxBxI, carry, lengths=lengths, reverse=reverse, unroll=unroll,
                                remat=remat, primal=_per_step_layer if per_step else None)
  else:
    if hoist is None:
      hoist = policy.hoist_by_default(cell.hidden_size(params))
    carry, ys_TxBxH = _scan_layer(cell, params, xs_TxBxI, carry, lengths, reverse=reverse, unroll=unroll,
                                  remat=remat, hoist=hoist)
  return carry, (ys_TxBxH if time_major else jnp.swapaxes(ys_TxBxH, 0, 1))


def _scan_layer(cell: Cell, params: Params, xs_TxBxI, carry, lengths, *, reverse: bool, unroll: int, remat: bool,
                hoist: bool):
  """The one `lax.scan` over time-major inputs: `(final_carry, ys_TxBxH)` (options as for `run`)."""
  if hoist:
    inputs_TxBxG, advance = cell.project(params, xs_TxBxI), cell.recur
  else:
    inputs_TxBxG, advance = xs_TxBxI, cell.step

  def body(carry, t_and_input):
    t, input_BxG = t_and_input
    new_carry, y_BxH = advance(params, carry, input_BxG)
    if lengths is not None:
      new_carry = jax.tree.map(lambda new, old: jnp.where(ops.valid_at(t, lengths, new), new, old),
                               new_carry, carry)
      y_BxH = jnp.where(ops.valid_at(t, lengths, y_BxH), y_BxH, 0)
    return new_carry, y_BxH

  if remat:
    body = jax.checkpoint(body, prevent_cse=False)
  return jax.lax.scan(body, carry, (jnp.arange(xs_TxBxI.shape[0]), inputs_TxBxG), reverse=reverse, unroll=unroll)


def _per_step_layer(cell: Cell, params: Params, xs_TxBxI, carry, lengths, *, reverse: bool, unroll: int):
  """`_scan_layer` with the input projection inside each step: the forward `fused.run` uses for
  undifferentiated calls where `policy.per_step_forward_pays`."""
  return _scan_layer(cell, params, xs_TxBxI, carry, lengths, reverse=reverse, unroll=unroll, remat=False, hoist=False)


_MERGES = ("concat", "sum")


def _check_merge(merge: str) -> None:
  if merge not in _MERGES:
    raise ValueError(f"merge must be one of {_MERGES}, got {merge!r}")


def run_bidirectional(cell: Cell, params: Params, xs: jax.Array, *, initial_carry=None,
                      lengths=None, merge: str = "concat", time_major: bool = False, **options):
  """Forward and backward passes over the same padded sequence.

  Args:
    params: `{"forward": cell params, "backward": cell params}`.
    initial_carry: `(forward_carry, backward_carry)` or None.
    merge: "concat" (`ys` is `[B, T, 2H]`) or "sum" (`[B, T, H]`).
    options: `unroll`, `remat`, `hoist`, `backward` as for `run`.
  Returns:
    `((forward_carry, backward_carry), ys)`. The backward carry is the state after
    reading each sequence from its last valid step back to step 0.
  """
  _check_merge(merge)
  if "reverse" in options:
    raise ValueError("reverse is for one direction: a bidirectional layer reads the sequence both ways")
  if not (isinstance(params, dict) and set(params) == {"forward", "backward"}):
    raise ValueError("bidirectional params must be a dict with keys 'forward' and 'backward', "
                     f"got {list(params) if isinstance(params, dict) else type(params).__name__}")
  carry_f, carry_b = (None, None) if initial_carry is None else initial_carry
  if _one_cudnn_call(cell, params, xs, lengths, time_major, options):
    return _cudnn_bidirectional(cell, params, xs, (carry_f, carry_b), lengths, merge, time_major)
  common = dict(lengths=lengths, time_major=time_major, **options)
  carry_f, ys_f = run(cell, params["forward"], xs, initial_carry=carry_f, **common)
  carry_b, ys_b = run(cell, params["backward"], xs, initial_carry=carry_b, reverse=True, **common)
  ys = jnp.concatenate([ys_f, ys_b], axis=-1) if merge == "concat" else ys_f + ys_b
  return (carry_f, carry_b), ys


def _one_cudnn_call(cell: Cell, params: Params, xs, lengths, time_major: bool, options: dict) -> bool:
  """Whether both directions run through cuDNN, which then reads them in one call."""
  batch, steps = (xs.shape[1], xs.shape[0]) if time_major else (xs.shape[0], xs.shape[1])
  choose = lambda p: _implementation(cell, p, options.get("backward", "auto"), options.get("hoist"),
                                     options.get("remat", False), batch, steps)
  return all(choose(params[d]) == "cudnn" for d in ("forward", "backward"))


def _cudnn_bidirectional(cell: Cell, params: Params, xs, carries, lengths, merge: str, time_major: bool):
  """`run_bidirectional` as one `cudnn.run_bidirectional` call."""
  lengths = None if lengths is None else jnp.asarray(lengths)
  for direction, carry in zip(("forward", "backward"), carries):
    batch, _ = _check_inputs(cell, params[direction], xs, carry, lengths, time_major)
  carries = [cell.initial_carry(params[d], (batch,)) if c is None else c
             for d, c in zip(("forward", "backward"), carries)]
  carries, ys = cudnn.run_bidirectional(params["forward"], params["backward"],
                                        jnp.swapaxes(xs, 0, 1) if time_major else xs, carries, lengths=lengths)
  if merge == "sum":
    ys_f, ys_b = jnp.split(ys, 2, axis=-1)
    ys = ys_f + ys_b
  return carries, (jnp.swapaxes(ys, 0, 1) if time_major else ys)


def init_stack(key: jax.Array, cell: Cell, input_size: int, hidden_size: int, num_layers: int = 1,
               bidirectional: bool = False, merge: str = "concat") -> list:
  """Params for `run_stack`: a list of per-layer cell params (or forward/backward dicts)."""
  if bidirectional:
    _check_merge(merge)
  params, size = [], input_size
  for key in jax.random.split(key, num_layers):
    if bidirectional:
      kf, kb = jax.random.split(key)
      params.append({"forward": cell.init(kf, size, hidden_size),
                     "backward": cell.init(kb, size, hidden_size)})
      output = cell.output_size(params[-1]["forward"])
      size = 2 * output if merge == "concat" else output
    else:
      params.append(cell.init(key, size, hidden_size))
      size = cell.output_size(params[-1])
  return params


def initial_stack_carry(cell: Cell, params: Sequence, batch_shape) -> list:
  """Zero carries for `run_stack`: one per layer, a (forward, backward) pair if bidirectional."""
  def layer_carry(p):
    if isinstance(p, dict) and set(p) == {"forward", "backward"}:
      return (cell.initial_carry(p["forward"], batch_shape), cell.initial_carry(p["backward"], batch_shape))
    return cell.initial_carry(p, batch_shape)
  return [layer_carry(p) for p in params]


def stack_frames(x_BxTxD: jax.Array, lengths_B: jax.Array, factor: int) -> tuple[jax.Array, jax.Array]:
  """Every `factor` consecutive steps concatenated (frame subsampling): `[B, T, D] -> [B, ceil(T/f), f*D]`,
  and the new lengths `ceil(lengths_B / f)`. The last step of a sequence is zero-padded when it is short."""
  if factor == 1:
    return x_BxTxD, lengths_B
  batch, steps, size = x_BxTxD.shape
  pad = -steps % factor
  padded = jnp.pad(x_BxTxD, ((0, 0), (0, pad), (0, 0)))
  return padded.reshape(batch, (steps + pad) // factor, factor * size), (lengths_B + factor - 1) // factor


def dropout(rng: jax.Array, rate: float, x_BxTxD: jax.Array, *, variational: bool = False,
            time_axis: int = 1) -> jax.Array:
  """Inverted dropout. `variational` draws one mask per sequence, shared over time (Gal & Ghahramani 2016).

  Each element's draw is 16 random bits (two per 32-bit word of the generator, half the cost of
  `jax.random.bernoulli`), so the keep probability is `1 - rate` rounded to a multiple of 1/65536 and the
  kept values are scaled by that rounded probability (the mean is kept exactly).
  """
  if not 0.0 <= rate < 1.0:
    raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
  threshold = round((1.0 - rate) * 65536)
  if threshold >= 65536:
    return x_BxTxD
  shape = list(x_BxTxD.shape)
  if variational:
    shape[time_axis] = 1
  size = int(np.prod(shape))
  words = jax.random.bits(rng, ((size + 1) // 2,), jnp.uint32)
  draws = jax.lax.bitcast_convert_type(words, jnp.uint16).reshape(-1)[:size].reshape(shape)
  keep = draws < jnp.uint16(threshold)
  return jnp.where(keep, x_BxTxD * (65536 / threshold), 0).astype(x_BxTxD.dtype)


def run_stack(cell: Cell, params: Sequence, xs: jax.Array, *, initial_carries: Sequence | None = None,
              lengths=None, bidirectional: bool = False, merge: str = "concat", residual: bool = False,
              dropout_rate: float = 0.0, dropout_rng: jax.Array | None = None,
              variational_dropout: bool = False, time_major: bool = False, **options):
  """Stacked (deep) recurrent network; each layer reads the previous layer's outputs.

  Args:
    params: from `init_stack`; one entry per layer.
    initial_carries: one carry per layer (pairs if bidirectional), or None for zeros.
    residual: add each layer's input to its output where their sizes agree (from the
      second layer on, when the first changes the width).
    dropout_rate: dropout on the outputs of every layer but the last (between layers;
      the caller drops the stack's input and output). Needs `dropout_rng`.
    variational_dropout: the same mask at every time step of a sequence.
    options: `reverse` (unidirectional only), `unroll`, `remat`, `hoist`, `backward`.
  Returns:
    `(final_carries, ys)`: a list with one final carry per layer, and the last layer's outputs.
  """
  if initial_carries is not None and len(initial_carries) != len(params):
    raise ValueError(f"got {len(initial_carries)} initial carries for {len(params)} layers")
  if dropout_rate > 0.0 and dropout_rng is None:
    raise ValueError("dropout_rate > 0 needs a dropout_rng")
  lengths = None if lengths is None else jnp.asarray(lengths)
  carries, layer_input = [], xs
  for layer, layer_params in enumerate(params):
    carry = None if initial_carries is None else initial_carries[layer]
    if bidirectional:
      carry, ys = run_bidirectional(cell, layer_params, layer_input, initial_carry=carry, lengths=lengths,
                                    merge=merge, time_major=time_major, **options)
    else:
      carry, ys = run(cell, layer_params, layer_input, initial_carry=carry, lengths=lengths,
                      time_major=time_major, **options)
    if residual and ys.shape == layer_input.shape:
      ys = ys + layer_input
      if lengths is not None:  # keep padded outputs zero even if the input was not
        ys = jnp.where(_padding_mask(lengths, ys, time_major), ys, 0)
    if layer + 1 < len(params) and dropout_rate > 0.0:
      ys = dropout(jax.random.fold_in(dropout_rng, layer), dropout_rate, ys,
                   variational=variational_dropout, time_axis=0 if time_major else 1)
    carries.append(carry)
    layer_input = ys
  return carries, layer_input
