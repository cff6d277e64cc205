"""Test-wide settings: rank promotion raises (catches silent broadcasting bugs)."""

import os

import jax
import pytest

from rnn_jax import fused

jax.config.update("jax_numpy_rank_promotion", "raise")

SHARED_DATA = os.environ.get("RNN_JAX_SHARED_DATA",
                             os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


def float64():
  """A context in which JAX computes in float64 (jax.enable_x64 on new jax, experimental on old)."""
  if hasattr(jax, "enable_x64"):
    return jax.enable_x64(True)
  from jax.experimental import enable_x64  # pylint: disable=g-import-not-at-top
  return enable_x64()


def shared_file(*parts):
  """Path to a file in ../shared/data, or skip the test with a message naming it."""
  path = os.path.abspath(os.path.join(SHARED_DATA, *parts))
  if not os.path.exists(path):
    pytest.skip(f"shared data file {path} is absent (set RNN_JAX_SHARED_DATA to its folder)")
  return path


@pytest.fixture(params=["jit", "nojit"])
def maybe_jit(request):
  """Runs a test body both jitted and not (as optax/chex tests do)."""
  return jax.jit if request.param == "jit" else (lambda f, **_: f)


def clear_traces():
  """Drops JAX's cached traces and rnn_jax.fused's cached layers: the next call traces afresh."""
  jax.clear_caches()
  fused._make_layer.cache_clear()  # pylint: disable=protected-access


@pytest.fixture
def fresh_traces():
  """For tests that change what tracing decides (a monkeypatched backend or layout rule): JAX reuses a
  cached trace of the same function and shapes, so without this such a test could run another test's
  trace, or leave its own to the next test."""
  clear_traces()
  yield
  clear_traces()
