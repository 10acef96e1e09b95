"""Every notebook runs top to bottom in a real Jupyter kernel against hfrag's local server.

They run on the hashing models (``HFRAG_NOTEBOOK_MODELS=hash``) so the suite stays fast; a cell
that raises (the notebooks assert what they show) fails the test. The committed files keep their
outputs (``scripts/execute_notebooks.py`` writes them), plots included.
"""

from __future__ import annotations

import base64
import struct
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
        assert _images(notebook) == 1  # retrieval against rerank scores
        assert "rerank order:" in text
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
    assert path.stat().st_size < 400_000
    for png in _pngs(notebook):
        assert round(png_dpi(png)) >= 100, "plots are saved at 100 dpi or more, to be readable"
    if path.name == "endpoints_and_reliability.ipynb":
        assert _images(notebook) == 3
    elif path.name.endswith("_rag.ipynb"):
        assert _images(notebook) == 1


def _pngs(notebook: Any) -> list[bytes]:
    return [
        base64.b64decode(out["data"]["image/png"])
        for cell in _code_cells(notebook)
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]


def png_dpi(png: bytes) -> float:
    """The resolution a PNG records (its pHYs chunk, pixels per metre), in dots per inch;
    without one, its width over a 6.4-inch figure."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    at = png.find(b"pHYs")
    if at > 0:
        per_metre, _, unit = struct.unpack(">IIB", png[at + 4 : at + 13])
        if unit == 1:
            return per_metre * 0.0254
    width = struct.unpack(">I", png[16:20])[0]
    return width / 6.4


def test_png_dpi_reads_the_recorded_resolution() -> None:
    chunk = b"pHYs" + struct.pack(">IIB", 3937, 3937, 1)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8 + struct.pack(">I", 300) + b"\x00" * 4 + chunk
    assert round(png_dpi(png)) == 100
    assert round(png_dpi(png.replace(chunk, b""))) == 47  # 300 px over 6.4 in
