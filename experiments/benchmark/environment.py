"""The machine a benchmark runs on: backend, devices, versions (recorded with every row), the device's
peak memory, and the process-wide malloc setting the CPU timings depend on."""

from __future__ import annotations

import datetime
import os
import platform

import jax


def environment() -> dict:
  """Backend, device and versions, recorded with every row."""
  import flax  # pylint: disable=g-import-not-at-top
  device = jax.devices()[0]
  env = {
      "backend": jax.default_backend(),
      "device": f"{device.platform}:{getattr(device, 'device_kind', '?')}",
      "num_devices": jax.device_count(),
      "host_cpus": os.cpu_count(),
      "cpu": _cpu_model(),
      "jax": jax.__version__,
      "jaxlib": getattr(jax.lib, "__version__", None) or _jaxlib_version(),
      "flax": flax.__version__,
      "python": platform.python_version(),
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
  }
  try:
    import torch  # pylint: disable=g-import-not-at-top
    env["torch"] = torch.__version__
    env["torch_threads"] = torch.get_num_threads()
  except ImportError:
    pass
  return env


def _jaxlib_version():
  import jaxlib  # pylint: disable=g-import-not-at-top
  return jaxlib.__version__


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def keep_freed_memory() -> bool:
  """Makes glibc malloc keep freed memory for reuse instead of returning it to the OS.

  XLA:CPU allocates each execution's temporaries as one block; above glibc's mmap
  threshold (at most 32 MiB) that block is mmap-ed fresh at every call and every page
  faults on first touch: 16k page faults and ~25 ms of kernel time per LSTM fwd+bwd at
  B=32, H=256, T=100, a third of the step. Torch pays the same on its smaller
  buffers. With mmap off, one arena (per-thread arenas are mmap-ed heaps of at most
  64 MiB) and no trimming, steady-state steps fault no pages. A process-wide setting
  for benchmarks and CPU training; returns whether it applied.
  """
  import ctypes  # pylint: disable=g-import-not-at-top
  import ctypes.util  # pylint: disable=g-import-not-at-top
  name = ctypes.util.find_library("c")
  if not name or platform.system() != "Linux":
    return False
  libc = ctypes.CDLL(name)
  m_trim_threshold, m_mmap_max, m_arena_max = -1, -4, -8  # from glibc's malloc.h
  return all(libc.mallopt(option, value) for option, value in
             [(m_arena_max, 1), (m_mmap_max, 0), (m_trim_threshold, 2 ** 31 - 1)])


def device_peak_bytes() -> int | None:
  """The device's peak memory in use so far (a high-water mark), where the backend reports it."""
  stats = jax.devices()[0].memory_stats()
  return None if not stats else stats.get("peak_bytes_in_use")

