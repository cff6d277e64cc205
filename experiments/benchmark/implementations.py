"""The recurrent networks the benchmark times, each as a `timing.Timer` for one `Spec`.

  rnn_jax(spec)   rnn_jax.scan.run_stack over any registered cell (the thing measured)
  flax(spec)      flax.linen nn.RNN(OptimizedLSTMCell | GRUCell | SimpleCell), stacked/Bidirectional
  torch(spec)     torch.nn.LSTM / GRU / RNN (oneDNN on CPU, cuDNN on GPU), if torch is importable
  cudnn(spec)     jax.experimental.rnn.lstm (cuDNN; GPU only, LSTM only)

All compute the same function on inputs of the same shape: outputs of the last layer
for `fwd`; for `fwdbwd` the gradients of `0.5 * sum(ys**2)` w.r.t. all parameters and
the inputs. An implementation that cannot run a spec raises `Unavailable`.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from experiments.benchmark import environment
from experiments.benchmark.flops import matmul_flops
from experiments.benchmark.spec import DTYPES, HOISTS, Spec
from experiments.benchmark.timing import Timer
from rnn_jax import cells, scan

_FLAX_CELLS = {"lstm": "OptimizedLSTMCell", "gru": "GRUCell", "elman": "SimpleCell", "rnn": "SimpleCell"}
_TORCH_MODULES = {"lstm": "LSTM", "gru": "GRU", "elman": "RNN", "rnn": "RNN"}


class Unavailable(Exception):
  """This implementation cannot run this spec (named in the message)."""


def _input_shape(spec: Spec) -> tuple:
  return (spec.length, spec.batch, spec.inputs) if spec.time_major else (spec.batch, spec.length, spec.inputs)


def _loss(ys):
  return 0.5 * jnp.sum(jnp.square(ys.astype(jnp.float32)))


def _rnn_jax_params(spec: Spec):
  """Float32 params; `--dtype=bfloat16` is the cell's mixed precision (bfloat16 matmul operands,
  float32 accumulation, params and carries)."""
  cell = cells.get(spec.cell, matmul_dtype=None if spec.dtype == "float32" else spec.dtype, **spec.options)
  params = scan.init_stack(jax.random.PRNGKey(0), cell, spec.inputs, spec.hidden, spec.layers,
                           bidirectional=spec.direction == "bi")
  return cell, params


def spec_flops(spec: Spec) -> int:
  """Matmul FLOPs of one step of `spec` (the same for every implementation)."""
  cell = cells.get(spec.cell, **spec.options)
  shapes = jax.eval_shape(lambda: scan.init_stack(jax.random.PRNGKey(0), cell, spec.inputs, spec.hidden,
                                                  spec.layers, bidirectional=spec.direction == "bi"))
  return matmul_flops(spec, shapes)


def jax_timer(name: str, fn, args, flops: int | None, **extra) -> Timer:
  """A Timer for `jax.jit(fn)(*args)`, compiled ahead of time; records the memory XLA plans."""
  holder = {}
  timer = Timer(name, lambda: jax.block_until_ready(holder["compiled"](*args)), flops=flops, extra=extra)

  def compile_fn():
    compiled = jax.jit(fn).lower(*args).compile()
    holder["compiled"] = compiled
    memory = compiled.memory_analysis()
    if memory is not None:
      timer.extra["temp_bytes"] = memory.temp_size_in_bytes
      timer.extra["argument_bytes"] = memory.argument_size_in_bytes
      timer.extra["output_bytes"] = memory.output_size_in_bytes
    timer.extra["device_peak_bytes"] = environment.device_peak_bytes()

  timer.compile_fn = compile_fn
  return timer


def _jax_step(spec: Spec, forward, params, xs):
  if spec.mode == "fwd":
    return forward, (params, xs)
  return jax.grad(lambda p, x: _loss(forward(p, x)), argnums=(0, 1)), (params, xs)


def rnn_jax(spec: Spec) -> Timer:
  """rnn_jax.scan.run_stack with the spec's runner options."""
  cell, params = _rnn_jax_params(spec)
  xs = jax.random.normal(jax.random.PRNGKey(1), _input_shape(spec), DTYPES[spec.dtype])
  hoist = HOISTS[spec.hoist]
  options = dict(bidirectional=spec.direction == "bi", time_major=spec.time_major, unroll=spec.unroll,
                 remat=spec.remat, hoist=hoist, backward=spec.backward)
  try:
    jax.eval_shape(lambda p, x: scan.run_stack(cell, p, x, **options), params, xs)
  except ValueError as e:
    raise Unavailable(str(e)) from None
  forward = lambda p, x: scan.run_stack(cell, p, x, **options)[1]
  fn, args = _jax_step(spec, forward, params, xs)
  return jax_timer("rnn_jax", fn, args, spec_flops(spec))


def flax(spec: Spec) -> Timer:
  """flax.linen nn.RNN over the flax cell of the same family."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  if spec.cell not in _FLAX_CELLS or spec.cell_options or spec.remat or spec.unroll != 1:
    raise Unavailable(f"no flax counterpart for cell {spec.cell!r} with options {spec.cell_options!r}, "
                      f"remat={spec.remat}, unroll={spec.unroll}")
  dtype = DTYPES[spec.dtype]
  make_cell = getattr(nn, _FLAX_CELLS[spec.cell])

  class Stack(nn.Module):
    @nn.compact
    def __call__(self, x):
      for _ in range(spec.layers):
        rnn = lambda: nn.RNN(make_cell(spec.hidden, dtype=dtype, param_dtype=jnp.float32), time_major=spec.time_major)
        x = nn.Bidirectional(rnn(), rnn(), time_major=spec.time_major)(x) if spec.direction == "bi" else rnn()(x)
      return x

  model = Stack()
  xs = jax.random.normal(jax.random.PRNGKey(1), _input_shape(spec), dtype)
  # flax's mixed precision: float32 params, computation (and outputs) in `dtype`.
  params = model.init(jax.random.PRNGKey(0), xs)
  fn, args = _jax_step(spec, model.apply, params, xs)
  return jax_timer("flax", fn, args, spec_flops(spec))


def torch(spec: Spec) -> Timer:
  """torch.nn.LSTM / GRU / RNN (oneDNN on CPU, cuDNN on CUDA)."""
  try:
    import torch as pt  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise Unavailable("torch is not installed (pip install torch; an optional extra)") from None
  if spec.cell not in _TORCH_MODULES or spec.cell_options or spec.remat:
    raise Unavailable(f"no torch counterpart for cell {spec.cell!r} with options {spec.cell_options!r}, "
                      f"remat={spec.remat}")
  device = "cuda" if jax.default_backend() == "gpu" and pt.cuda.is_available() else "cpu"
  dtype = {"float32": pt.float32, "bfloat16": pt.bfloat16}[spec.dtype]
  pt.manual_seed(0)
  module = getattr(pt.nn, _TORCH_MODULES[spec.cell])(
      spec.inputs, spec.hidden, num_layers=spec.layers, bidirectional=spec.direction == "bi",
      batch_first=not spec.time_major).to(device=device, dtype=dtype)
  xs = pt.randn(*_input_shape(spec), device=device, dtype=dtype, requires_grad=spec.mode == "fwdbwd")
  sync = pt.cuda.synchronize if device == "cuda" else (lambda: None)

  def forward():
    with pt.inference_mode():
      module(xs)
    sync()

  def forward_backward():
    module.zero_grad(set_to_none=True)
    xs.grad = None
    ys, _ = module(xs)
    (0.5 * ys.float().square().sum()).backward()
    sync()

  step = forward if spec.mode == "fwd" else forward_backward
  start = time.perf_counter()
  try:
    step()  # the first call also creates the oneDNN/cuDNN primitives: reported as compile time
  except RuntimeError as e:
    raise Unavailable(f"torch failed: {e}") from None
  timer = Timer("torch", step, flops=spec_flops(spec), extra={"torch_device": device})
  timer.compile_s = time.perf_counter() - start
  return timer


def cudnn(spec: Spec) -> Timer:
  """jax.experimental.rnn.lstm: JAX's binding of the cuDNN LSTM kernel (GPU only)."""
  if jax.default_backend() != "gpu":
    raise Unavailable("jax.experimental.rnn has only a cuDNN (GPU) implementation")
  if spec.cell != "lstm" or spec.cell_options or spec.remat or spec.dtype != "float32":
    raise Unavailable("jax.experimental.rnn implements only a plain float32 LSTM")
  from jax.experimental import rnn as jrnn  # pylint: disable=g-import-not-at-top
  bi = spec.direction == "bi"
  weights = jrnn.init_lstm_weight(jax.random.PRNGKey(0), spec.inputs, spec.hidden, spec.layers, bi)
  xs = jax.random.normal(jax.random.PRNGKey(1), (spec.batch, spec.length, spec.inputs))  # batch-major only
  carry = jnp.zeros(((2 if bi else 1) * spec.layers, spec.batch, spec.hidden))
  lengths = jnp.full((spec.batch,), spec.length, jnp.int32)

  def forward(w, x):
    ys, _, _ = jrnn.lstm(x, carry, carry, w, lengths, input_size=spec.inputs, hidden_size=spec.hidden,
                         num_layers=spec.layers, dropout=0.0, bidirectional=bi)
    return ys

  fn, args = _jax_step(spec, forward, weights, xs)
  return jax_timer("cudnn", fn, args, spec_flops(spec))


COMPARE = {"flax": flax, "torch": torch, "cudnn": cudnn}
