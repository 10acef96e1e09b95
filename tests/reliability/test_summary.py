"""docs/RELIABILITY.md's table says what this suite holds: its counts are pytest's collection,
its results add up to them, and every module of the suite is one of its rows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.reliability.summary import (
    FOLDER,
    PAGE,
    ROWS,
    collect,
    count,
    readme_block,
    readme_results,
    render,
)

HERE = Path(__file__).resolve().parent
REGENERATE = "run `python tests/reliability/summary.py` to run the suite and rewrite the table"


def _whole_suite_collected(config: pytest.Config, items: list[pytest.Item]) -> list[str] | None:
    """This session's cases of the suite when it collected all of them (then no second
    collection is needed), else None."""
    if config.getoption("keyword") or config.getoption("markexpr"):
        return None
    if config.getoption("deselect") or any("::" in str(arg) for arg in config.args):
        return None
    ids = [item.nodeid for item in items if item.nodeid.startswith(FOLDER + "/")]
    modules = {nodeid.split("::", 1)[0] for nodeid in ids}
    if modules != {f"{FOLDER}/{p.name}" for p in HERE.glob("test_*.py")}:
        return None
    return ids


def test_every_module_is_one_row() -> None:
    in_rows = [module for row in ROWS for module in row.modules]
    assert len(in_rows) == len(set(in_rows))
    modules = {p.stem for p in HERE.glob("test_*.py")} - {Path(__file__).stem}
    assert set(in_rows) == modules, "a module of the suite is missing from summary.ROWS"


def test_the_readme_table_is_the_suite(request: pytest.FixtureRequest) -> None:
    ids = _whole_suite_collected(request.config, request.session.items) or collect()
    counts = count(ids)
    block = readme_block(PAGE.read_text(encoding="utf-8"))
    results = readme_results(block)
    assert block == render(counts, results), REGENERATE
    for row in ROWS:
        numbers = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped)", results[row])}
        assert not numbers.get("failed"), row.what
        assert sum(numbers.values()) == counts[row].cases, f"{row.what}: {REGENERATE}"
    every = [row for row in ROWS if counts[row].per_class]
    assert len(every) >= 4  # hard failures, bad inputs, malformed answers, credentials
