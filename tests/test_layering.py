"""The package's layering, read from the imports (ast) of every module of `rnn_jax/` and `experiments/`.

Experiments build on the library, never the reverse. Inside the library each module lives on one floor and
imports only its own floor and those below: ground floor (`ops`, `layers`) -> cells -> runner (`scan`, `fused`)
-> blocks (attention, decoding, ctc, mdn, tree, nn) -> train. `rnn_jax/data/` stands beside the floors: any of
them may read data, and data imports nothing of the library but itself and the ground floor. No module outside
`cells/` and `fused/` names a concrete cell class (LSTM, GRU, Elman, ...): others ask the registry,
`cells.get(name)`. And every package the library imports when loaded is one of its declared requirements.
"""

import ast
import importlib.metadata
import pathlib
import re
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Floors of the library, lowest first: module (or package) -> floor. `rnn_jax` itself (its __init__) re-exports
# the runner.
FLOORS = {"rnn_jax.ops": 0, "rnn_jax.layers": 0, "rnn_jax.cells": 1, "rnn_jax.scan": 2, "rnn_jax.fused": 2,
          "rnn_jax": 2, "rnn_jax.attention": 3, "rnn_jax.decoding": 3, "rnn_jax.ctc": 3, "rnn_jax.mdn": 3,
          "rnn_jax.tree": 3, "rnn_jax.nn": 3, "rnn_jax.train": 4}
FLOOR_NAMES = ("ground floor", "cells", "runner", "blocks", "train")
DATA = "rnn_jax.data"
CELL_HOMES = ("rnn_jax.cells", "rnn_jax.fused")  # where concrete cells may be named


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(name: str) -> bool:
  return (ROOT / name.replace(".", "/") / "__init__.py").is_file()


def _is_module(name: str) -> bool:
  return _is_package(name) or (ROOT / (name.replace(".", "/") + ".py")).is_file()


def _within(name: str, prefix: str) -> bool:
  return name == prefix or name.startswith(prefix + ".")


def _imports(module: str, tree: ast.Module) -> set[str]:
  """The modules `module` imports (`from pkg import sub` counts as `pkg.sub` where that is a module)."""
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative: from the package that holds `module`
        package = module.split(".") if _is_package(module) else module.split(".")[:-1]
        base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
      for alias in node.names:
        out.add(f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base)
  return out


def _floor(name: str) -> int | None:
  """The floor of a library module: its longest entry in FLOORS (`rnn_jax` only for itself)."""
  matches = [prefix for prefix in FLOORS if name == prefix or (prefix != "rnn_jax" and _within(name, prefix))]
  return FLOORS[max(matches, key=len)] if matches else None


def concrete_cells() -> set[str]:
  """Classes defined in `rnn_jax/cells/` that derive, directly or through one another, from `Cell`."""
  bases = {}
  for path in (ROOT / "rnn_jax" / "cells").glob("*.py"):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.ClassDef):
        bases[node.name] = {b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases}
  cells = {"Cell"}
  while True:
    more = {name for name, parents in bases.items() if parents & cells} - cells
    if not more:
      return cells - {"Cell"}
    cells |= more


def violations(path: str, source: str, concrete: set[str]) -> list[str]:
  """What the module at `path` (relative to the repository root) with this source breaks, one line each."""
  module = _module_name(ROOT / path)
  tree = ast.parse(source)
  found = []
  if _within(module, "rnn_jax") and not _within(module, DATA) and _floor(module) is None:
    found.append(f"{path}: {module} is on no floor: add it to FLOORS in tests/test_layering.py")
  for target in sorted(_imports(module, tree)):
    if _within(module, "rnn_jax") and _within(target, "experiments"):
      found.append(f"{path}: the library imports {target}: experiments build on the library, not the reverse")
    if not _within(target, "rnn_jax") or not _within(module, "rnn_jax"):
      continue
    if _within(module, DATA):
      if not (_within(target, DATA) or _floor(target) == 0):
        found.append(f"{path}: data imports {target}: rnn_jax.data depends only on itself and the ground floor")
    elif not _within(target, DATA):
      here, there = _floor(module), _floor(target)
      if None not in (here, there) and there > here:
        found.append(f"{path}: {module} ({FLOOR_NAMES[here]}) imports {target} ({FLOOR_NAMES[there]}), a floor above")
  if not any(_within(module, home) for home in CELL_HOMES):
    for node, name in _library_names(tree):
      if name in concrete:
        found.append(f"{path}:{getattr(node, 'lineno', '?')}: names the cell class {name}: use cells.get(name)")
  return found


def _library_names(tree: ast.Module):
  """`(node, name)` for each name the module takes from rnn_jax: an imported name, or an attribute read off
  an imported rnn_jax module (`cells.LSTM`), not another library's (`torch.nn.LSTM`)."""
  bound = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "rnn_jax":
      for alias in node.names:
        bound.add(alias.asname or alias.name)
        yield alias, alias.name
    elif isinstance(node, ast.Import):
      bound.update((a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] == "rnn_jax")
  for node in ast.walk(tree):
    if isinstance(node, ast.Attribute):
      root = node.value
      while isinstance(root, ast.Attribute):
        root = root.value
      if isinstance(root, ast.Name) and root.id in bound:
        yield node, node.attr


def _modules():
  paths = [p for top in ("rnn_jax", "experiments") for p in (ROOT / top).rglob("*.py")]
  return sorted(p.relative_to(ROOT).as_posix() for p in paths)


def test_the_concrete_cells_are_found():
  assert {"LSTM", "GRU", "Elman", "Clockwork", "Reservoir"} <= concrete_cells()


def test_every_module_keeps_the_layering():
  concrete = concrete_cells()
  found = [line for path in _modules() for line in violations(path, (ROOT / path).read_text(), concrete)]
  assert not found, "\n".join(found)


@pytest.mark.parametrize("path,source,problem", [
    ("rnn_jax/cells/gru.py", "from rnn_jax import scan", "a floor above"),
    ("rnn_jax/ops.py", "import rnn_jax.cells.base", "a floor above"),
    ("rnn_jax/fused/lstm.py", "from rnn_jax.tree import run", "a floor above"),
    ("rnn_jax/scan.py", "from .train import loop", "a floor above"),
    ("rnn_jax/cells/lstm.py", "from ..fused import policy", "a floor above"),
    ("rnn_jax/data/expressions.py", "from rnn_jax.tree import Trees", "data imports rnn_jax.tree"),
    ("rnn_jax/data/text.py", "from rnn_jax import cells", "data imports rnn_jax.cells"),
    ("rnn_jax/train/loop.py", "from experiments import command_line", "the library imports experiments"),
    ("rnn_jax/new_block.py", "from rnn_jax import scan", "is on no floor"),
    ("experiments/foo/model.py", "from rnn_jax.cells import LSTM", "names the cell class LSTM"),
    ("rnn_jax/attention.py", "from rnn_jax import cells\ncell = cells.GRU(reset_after=False)", "names the cell class GRU"),
    ("rnn_jax/scan.py", "import rnn_jax.cells\nrnn_jax.cells.elman.Elman", "names the cell class Elman"),
])
def test_a_violation_is_reported(path, source, problem):
  found = violations(path, source, concrete_cells())
  assert any(problem in line for line in found), found


@pytest.mark.parametrize("path,source", [
    ("rnn_jax/tree.py", "from rnn_jax import layers, ops\nfrom rnn_jax.data.trees import Trees"),
    ("rnn_jax/fused/policy.py", "from rnn_jax.cells.lstm import LSTM\nisinstance(cell, LSTM)"),
    ("rnn_jax/data/parallel_batches.py", "from rnn_jax.data import buckets\nfrom rnn_jax import ops"),
    ("experiments/foo/model.py", "from rnn_jax import cells, scan\ncell = cells.get('lstm')"),
])
def test_allowed_imports_pass(path, source):
  assert violations(path, source, concrete_cells()) == []


def test_another_librarys_class_of_the_same_name_is_not_a_cell():
  source = "import torch\nfrom torch import nn\nlayer = nn.LSTM(4, 8)\nother = torch.nn.GRU(4, 8)"
  assert not violations("experiments/foo/torch_model.py", source, concrete_cells())


def _distribution(name: str) -> str:
  """A requirement's or distribution's name, normalised (PEP 503): "ml-collections" == "ml_collections"."""
  return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", name).group(0)).lower()


def test_every_package_the_library_imports_at_load_is_a_core_requirement():
  """What a module of `rnn_jax/` imports at its top is installed by `pip install -e .` alone (imports inside
  functions are the extras': sentencepiece, torch)."""
  with open(ROOT / "pyproject.toml", "rb") as f:
    required = {_distribution(r) for r in tomllib.load(f)["project"]["dependencies"]}
  providers = importlib.metadata.packages_distributions()
  missing = {}
  for path in sorted((ROOT / "rnn_jax").rglob("*.py")):
    for node in ast.parse(path.read_text()).body:
      names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
               else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
      for top in {name.split(".")[0] for name in names} - set(sys.stdlib_module_names) - {"rnn_jax", "__future__"}:
        if not {_distribution(d) for d in providers.get(top, [top])} & required:
          missing.setdefault(top, str(path.relative_to(ROOT)))
  assert not missing, f"imported by the library but not in pyproject's dependencies: {missing}"
