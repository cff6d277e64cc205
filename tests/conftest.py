"""Test-wide settings: rank promotion raises (catches silent broadcasting bugs); one JAX compilation cache
for the whole run, shared by the pytest-xdist workers and the commands tests launch (they compile the same
train steps many times; a cached program is the program XLA compiled, so results are unchanged).

Tests of real datasets read them from the data directory ($RNN_JAX_DATA, else ~/rnn_jax_data) and skip,
naming the fetch command, where a dataset is absent.
"""

import os
import shutil
import tempfile

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # set before jax is imported; workers inherit it
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="rnn_jax_tests_jax_cache_")
  os.environ["RNN_JAX_TESTS_OWN_CACHE"] = "1"
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # small programs recur too

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

from rnn_jax import fused
from rnn_jax.data import fetch

jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_unconfigure(config):
  """The run's own compilation cache is removed by the process that made it (not by xdist workers)."""
  if os.environ.get("RNN_JAX_TESTS_OWN_CACHE") and not hasattr(config, "workerinput"):
    shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


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
