"""Matmul FLOPs of a step: from a grid point's weight shapes (`matmul_flops`) or read off any
function's jaxpr (`jaxpr_matmul_flops`, for whole train steps and as an independent check)."""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.extend
import numpy as np

from experiments.benchmark.spec import Spec


def _weight_matrices(layer_params) -> list:
  """The 2-D weights one direction of a layer multiplies each step (w_x, w_h)."""
  return [layer_params[k] for k in ("w_x", "w_h")]


def matmul_flops(spec: Spec, params_per_layer: Sequence) -> int:
  """FLOPs of the matmuls one step (call) of `spec` performs, from the weight shapes.

  Forward: `2 * B * T * (I*G + H*G)` per layer and direction (`x W_x` and `h W_h`, with
  `G` the gate width). The backward pass multiplies each forward matmul twice more (the
  gradients w.r.t. both operands), so fwd+bwd is 3x forward. Model FLOPs: work that
  remat recomputes is not counted, so FLOP/s compare across remat settings.
  """
  per_token = 0
  for layer in params_per_layer:
    directions = [layer["forward"], layer["backward"]] if set(layer) == {"forward", "backward"} else [layer]
    for p in directions:
      per_token += sum(2 * int(np.prod(w.shape)) for w in _weight_matrices(p))
  forward = spec.batch * spec.length * per_token
  return forward if spec.mode == "fwd" else 3 * forward


def jaxpr_matmul_flops(fn: Callable, *args) -> int:
  """FLOPs of every `dot_general` `fn(*args)` executes, read off its jaxpr.

  Loops are expanded (`scan` bodies count `length` times); for `cond` the costliest
  branch counts. Used for whole train steps, where no closed form is at hand, and in
  the tests as an independent check of `matmul_flops`.
  """
  return _count_jaxpr(jax.make_jaxpr(fn)(*args).jaxpr)


def _dot_flops(eqn) -> int:
  (lhs_contract, _), (lhs_batch, _) = eqn.params["dimension_numbers"]
  lhs, rhs = (v.aval.shape for v in eqn.invars)
  out = eqn.outvars[0].aval.shape
  contracted = int(np.prod([lhs[d] for d in lhs_contract]))
  del rhs, lhs_batch  # the output holds batch and free dimensions
  return 2 * int(np.prod(out)) * contracted


def _sub_jaxprs(value):
  if isinstance(value, jax.extend.core.ClosedJaxpr):
    yield value.jaxpr
  elif isinstance(value, jax.extend.core.Jaxpr):
    yield value
  elif isinstance(value, (tuple, list)):
    for v in value:
      yield from _sub_jaxprs(v)


def _count_jaxpr(jaxpr) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "dot_general":
      total += _dot_flops(eqn)
    elif name == "scan":
      total += eqn.params["length"] * _count_jaxpr(eqn.params["jaxpr"].jaxpr)
    elif name == "cond":
      total += max(_count_jaxpr(b.jaxpr) for b in eqn.params["branches"])
    elif name == "while":
      raise ValueError("cannot count the FLOPs of a while loop with an unknown trip count")
    else:
      for value in eqn.params.values():
        for sub in _sub_jaxprs(value):
          total += _count_jaxpr(sub)
  return total
