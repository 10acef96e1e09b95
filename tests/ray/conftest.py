"""One local Ray for the whole session: 2 CPUs, no dashboard, its own temp dir and clean env.

Workers are started by Ray's raylet, not forked from the test process, so the per-test credential
fixture cannot reach them: the session's runtime env clears the ambient token variables and
points the Hugging Face cache at an empty directory for every worker instead.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Path]:
    """Ray in local mode for every test of this folder; yields its session directory."""
    root = Path(tempfile.mkdtemp(prefix="hfrag-ray-"))
    hf_home = root / "hf_home"
    hf_home.mkdir()
    if ray.is_initialized():  # started by something else in this process, with its settings
        ray.shutdown()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=str(root / "ray"),
        object_store_memory=200 * 2**20,
        logging_level="WARNING",
        log_to_driver=True,
        runtime_env={
            "env_vars": {
                "HF_TOKEN": "",
                "HUGGING_FACE_HUB_TOKEN": "",
                "HF_HOME": str(hf_home),
                "HF_HUB_OFFLINE": "1",
            }
        },
    )
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    try:
        yield root / "ray"
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ray_ready(ray_session: Path) -> Path:
    """Use in a test that runs Ray; the DataContext is fresh for each test's datasets."""
    return ray_session


def rows(n: int, offset: int = 0) -> list[dict[str, Any]]:
    """``n`` rows with an ``id`` and a distinct ``text``."""
    return [
        {"id": i, "text": f"passage {i} about topic {i % 13} and item {i * 7 % 101}"}
        for i in range(offset, offset + n)
    ]
