"""Test-wide settings: rank promotion raises (catches silent broadcasting bugs).

Tests of real datasets read them from the data directory ($RNN_JAX_DATA, else ~/rnn_jax_data) and skip,
naming the fetch command, where a dataset is absent.
"""

import jax
import pytest

from rnn_jax import fused
from rnn_jax.data import fetch

jax.config.update("jax_numpy_rank_promotion", "raise")

def float64():
  """A context in which JAX computes in float64 (jax.enable_x64 on new jax, experimental on old)."""
  if hasattr(jax, "enable_x64"):
    return jax.enable_x64(True)
  from jax.experimental import enable_x64  # pylint: disable=g-import-not-at-top
  return enable_x64()


def fetched_file(name: str) -> str:
  """The file of dataset `name` in the data directory, or skip the test naming the command that fetches it."""
  try:
    return fetch.resolve(fetch.PREFIX + name)
  except fetch.MissingDataError as e:
    pytest.skip(str(e))


@pytest.fixture(params=["jit", "nojit"])
def maybe_jit(request):
  """Runs a test body both jitted and not (as optax/chex tests do)."""
  return jax.jit if request.param == "jit" else (lambda f, **_: f)


def clear_traces():
  """Drops JAX's cached traces and rnn_jax.fused's cached layers: the next call traces afresh."""
  jax.clear_caches()
  fused.layer._make_layer.cache_clear()  # pylint: disable=protected-access


@pytest.fixture
def fresh_traces():
  """For tests that change what tracing decides (a monkeypatched backend or layout rule): JAX reuses a
  cached trace of the same function and shapes, so without this such a test could run another test's
  trace, or leave its own to the next test."""
  clear_traces()
  yield
  clear_traces()
