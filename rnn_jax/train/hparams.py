"""A run's config as TensorBoard hparams, so that the HPARAMS tab compares runs by their settings."""

from __future__ import annotations

from typing import Any, Mapping

from tensorboardX import FileWriter
from tensorboardX.summary import hparams as hparams_summaries

Value = str | bool | float | int


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Value]:
  """The config's values by dotted name (`{"model.hidden_size": 256, ...}`); tuples, lists and other
  values as their text, so that TensorBoard can show each one."""
  flat = {}
  for name, value in config.items():
    if hasattr(value, "items"):
      flat.update(flatten(value, f"{prefix}{name}."))
    elif value is not None:
      flat[f"{prefix}{name}"] = value if isinstance(value, (str, bool, float, int)) else str(value)
  return flat


def write(config, logdir: str) -> None:
  """Writes `config` as the hparams of the run whose event files are in `logdir` (TensorBoard takes the
  metrics to compare from the run's scalars)."""
  _, session_start, _ = hparams_summaries(flatten(config), {})
  writer = FileWriter(logdir, filename_suffix=".hparams")
  writer.add_summary(session_start)
  writer.close()
