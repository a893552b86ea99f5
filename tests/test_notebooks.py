"""Notebooks: each example notebook runs top-to-bottom in a fresh kernel; the committed files are generated, stripped.

The notebooks run at toy size (about 10-15 s each on one free core); executed outputs are never written back.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = ("01_quickstart.ipynb", "02_world_model.ipynb", "03_policy_in_imagination.ipynb")
KERNEL = "python3"  # ipykernel's spec, which `make install` puts into the venv's share/jupyter/kernels
CELL_TIMEOUT_S = 120  # one cell; the toy training cells take a few seconds
NOTEBOOK_TIMEOUT_S = 300  # the whole notebook (each runs in < 90 s on one free core)
REPO_OUTPUT_NAMES = ("outputs", "lightning_logs", "notebook_outputs", "data", "runs")  # what a stray run would create


def _build_module() -> ModuleType:
    """``notebooks/build_notebooks.py`` imported from its file (``notebooks/`` is not a package)."""
    spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOK_DIR / "build_notebooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    dont_write_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = dont_write_bytecode
    return module


def _repo_entries() -> set[Path]:
    """Files of ``notebooks/`` and the output folders a notebook might create in the repository root."""
    entries = {path for path in NOTEBOOK_DIR.iterdir() if path.name != "__pycache__"}
    return entries | {REPO_ROOT / name for name in REPO_OUTPUT_NAMES if (REPO_ROOT / name).exists()}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stripped_and_generated(name: str) -> None:
    path = NOTEBOOK_DIR / name
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: cell {cell.id} has outputs"
    assert path.read_text() == _build_module().render(name), (
        f"{name} differs from what notebooks/build_notebooks.py generates; run `python notebooks/build_notebooks.py`"
    )


@pytest.mark.timeout(NOTEBOOK_TIMEOUT_S)
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient

    assert KERNEL in KernelSpecManager().find_kernel_specs(), (
        f"no Jupyter kernel spec {KERNEL!r}; ipykernel installed in the venv (`make install`) provides it"
    )
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel inherits it: the notebook's mkdtemp() lands here
    before = _repo_entries()
    notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    client = NotebookClient(
        notebook, timeout=CELL_TIMEOUT_S, kernel_name=KERNEL, resources={"metadata": {"path": str(tmp_path)}}
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError (naming the cell and the traceback) on any cell error
    print(f"{name}: {time.perf_counter() - start:.1f} s")
    assert _repo_entries() <= before, f"{name} wrote into the repository: {sorted(_repo_entries() - before)}"
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, f"{name}: error outputs {errors}"
