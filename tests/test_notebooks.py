"""Executes every notebook in notebooks/ in its small setting, so none of them rots."""

import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "notebooks", "*.ipynb")))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path, monkeypatch):
  monkeypatch.setenv("RNN_JAX_NOTEBOOK_SMALL", "1")
  monkeypatch.setenv("PYTHONPATH", REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  notebook = nbformat.read(path, as_version=4)
  NotebookClient(notebook, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(tmp_path)}}).execute()
  errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "error"]
  assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_is_saved_with_outputs_and_a_figure(path):
  """A reader opening the file (e.g. on GitHub) sees what it computes without running it."""
  notebook = nbformat.read(path, as_version=4)
  code = [c for c in notebook.cells if c.cell_type == "code"]
  assert all(c.execution_count is not None for c in code), "some cells were never executed"
  assert not [o for c in code for o in c.outputs if o.output_type == "error"]
  figures = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
  assert figures, "no inline figure"
