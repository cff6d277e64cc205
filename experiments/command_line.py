"""What the experiments' command lines share: the config flag, the experiments-extra check, quiet library logs,
the config check, the model line, an experiment's named configs."""

from __future__ import annotations

import difflib
import importlib.util
import logging as py_logging
import os
import pkgutil
import re
import sys
from typing import Any, Callable, Sequence

import jax
import numpy as np
from absl import flags, logging
from ml_collections import config_flags

from rnn_jax import train


def config_flag(main_file: str, default_config: str, name: str = "config",
                help_text: str = "Config file (see configs/).") -> flags.FlagHolder:
  """`--<name>` (default: `configs/<default_config>.py` beside `main_file`) with `--<name>.<field>` overrides.

  An override naming no field of the config exits at once with one line naming it and the closest field.
  """
  default = os.path.join(os.path.dirname(os.path.abspath(main_file)), "configs", f"{default_config}.py")
  config = _load_config(_config_argument(sys.argv, name) or default)
  message = unknown_field_message(config, override_paths(sys.argv, name), name)
  if message:
    sys.exit(message)
  return config_flags.DEFINE_config_file(name, default, help_text)


def _config_argument(argv: Sequence[str], name: str = "config") -> str:
  """The value of `--<name>=PATH` (or `--<name> PATH`) in `argv`, or ""."""
  for i, arg in enumerate(argv):
    if arg.startswith((f"--{name}=", f"-{name}=")):
      return arg.split("=", 1)[1]
    if arg in (f"--{name}", f"-{name}") and i + 1 < len(argv):
      return argv[i + 1]
  return ""


def override_paths(argv: Sequence[str], name: str = "config") -> list[str]:
  """The field paths of `--<name>.a.b=...` (and `--no<name>.a.b`) arguments, in order."""
  found = (re.match(rf"^--?(?:no)?{name}\.([^=]+)", arg) for arg in argv)
  return [match.group(1) for match in found if match]


def _load_config(path: str):
  """The config `path` (`file.py` or `file.py:argument`) defines, or None when it cannot be loaded (the
  config flag then reports that itself)."""
  file_name, *argument = path.split(":", 1)
  try:
    spec = importlib.util.spec_from_file_location("_checked_config", file_name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(*argument)
  except Exception:  # pylint: disable=broad-except
    return None


def unknown_field_message(config, paths: Sequence[str], flag_name: str = "config") -> str:
  """One line naming the first of `paths` (dotted, below `config`, overridden through `--<flag_name>.<path>`)
  that is not a field, with the closest field; "" when every path is a field."""
  if config is None:
    return ""
  for path in paths:
    node, walked = config, "config"
    for name in path.split("."):
      fields = list(node.keys()) if hasattr(node, "keys") else []
      if name not in fields:
        return _no_field_line(f"--{flag_name}.{path}", walked, name, fields)
      node, walked = node[name], f"{walked}.{name}"
  return ""


def _no_field_line(flag: str, parent: str, name: str, fields: Sequence[str]) -> str:
  if not fields:
    return f"{flag}: {parent} is a value, not a group of fields"
  closest = difflib.get_close_matches(name, fields, n=1)
  hint = f"did you mean {parent}.{closest[0]}?" if closest else f"its fields: {', '.join(sorted(fields))}"
  return f"{flag}: {parent} has no field {name!r}; {hint}"


EXTRA_MODULES = ("matplotlib", "sacrebleu", "sentencepiece", "num2words")  # what `.[experiments]` installs


def missing_extra_message(modules: Sequence[str] = EXTRA_MODULES) -> str:
  """One line naming the `modules` that cannot be imported and the install command that brings them; ""
  when all import."""
  missing = [name for name in modules if not _importable(name)]
  if not missing:
    return ""
  return f"this experiment needs {', '.join(missing)}: pip install -e '.[experiments]' (the experiments extra)"


def _importable(module: str) -> bool:
  try:
    importlib.import_module(module)
  except ImportError:
    return False
  return True


def require_experiments_extra(modules: Sequence[str] = EXTRA_MODULES) -> None:
  """Exits at once with `missing_extra_message` when some of `modules` are not installed (rather than after
  training, when the plots are drawn)."""
  message = missing_extra_message(modules)
  if message:
    sys.exit(message)


def quiet_library_logs() -> None:
  """Hides JAX's report of each accelerator backend it probes and does not find (one INFO line per
  command); warnings, such as a GPU without a CUDA-enabled jaxlib, still show."""
  py_logging.getLogger("jax._src.xla_bridge").setLevel(py_logging.WARNING)


def parameter_count(init) -> int:
  """How many parameters `init(key) -> (params, model_state)` makes, counted without computing them."""
  shapes = jax.eval_shape(init, jax.random.PRNGKey(0))
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(shapes[0]))


def log_model_and_workdir(description: str, init, workdir: str) -> None:
  """The run's model line: what it is, its parameter count, where its files go."""
  logging.info("model: %s, %s parameters; workdir %s", description, f"{parameter_count(init):,}",
               os.path.abspath(workdir))


def validated(validate: Callable[[Any], None], config):
  """`config`, once the experiment's `validate(config)` passed; its ValueError naming a field becomes a
  ConfigError, which the command line shows in one line before any compute."""
  try:
    validate(config)
  except ValueError as e:
    raise train.ConfigError(str(e)) from None
  return config


def named_config(configs_package: str, name: str, model_overrides: dict):
  """`<configs_package>.<name>.get_config()` with `model_overrides` set in its `model` (as an experiment's
  `synthetic_train_step` takes them); ValueError naming an unknown config with the known ones, or an unknown
  model field with the closest."""
  known = sorted(m.name for m in pkgutil.iter_modules(importlib.import_module(configs_package).__path__)
                 if m.name != "base")
  if name not in known:
    raise ValueError(f"unknown variant {name!r}: no such config in {configs_package.replace('.', '/')}; "
                     f"known: {', '.join(known)}")
  config = importlib.import_module(f"{configs_package}.{name}").get_config()
  for field in model_overrides:
    if field not in config.model:
      raise ValueError(_no_field_line(f"override {field}", "config.model", field, list(config.model.keys())))
  config.model.update(model_overrides)
  return config
