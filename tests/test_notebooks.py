"""Every notebook runs top to bottom in a real Jupyter kernel against hfrag's local server.

They run on the hashing models (``HFRAG_NOTEBOOK_MODELS=hash``) so the suite stays fast; a cell
that raises (the notebooks assert what they show) fails the test. The committed files keep their
outputs (``scripts/execute_notebooks.py`` writes them), plots included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _code_cells(notebook: Any) -> list[Any]:
    return [c for c in notebook.cells if c.cell_type == "code"]


def _text(cell: Any) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def _images(notebook: Any) -> int:
    return sum(
        "image/png" in out.get("data", {})
        for cell in _code_cells(notebook)
        for out in cell.get("outputs", [])
    )


def test_the_notebooks_are_there() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {
        "quickstart.ipynb",
        "langchain_rag.ipynb",
        "llama_index_rag.ipynb",
        "endpoints_and_reliability.ipynb",
    } <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_in_a_kernel(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFRAG_NOTEBOOK_MODELS", "hash")  # the kernel inherits the environment
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()  # raises CellExecutionError naming the cell on any error
    cells = _code_cells(notebook)
    assert all(c.execution_count for c in cells)
    text = "\n".join(_text(c) for c in cells)
    if path.name == "quickstart.ipynb":
        assert "The Eiffel Tower is in Paris." in text
        assert "North Sea" in text
        assert "position" in text
    elif path.name.endswith("_rag.ipynb"):
        assert "[bees]" in text
        assert "hashing models" in text
    elif path.name == "endpoints_and_reliability.ipynb":
        assert _images(notebook) == 3
        assert "InferenceTimeoutError" in text
        assert "InferenceConnectionError" in text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebooks_keep_their_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    cells = _code_cells(notebook)
    assert all(c.execution_count for c in cells), "run scripts/execute_notebooks.py"
    assert not [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert path.stat().st_size < 200_000  # low-dpi plots keep the files small
    if path.name == "endpoints_and_reliability.ipynb":
        assert _images(notebook) == 3
