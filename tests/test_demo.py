"""``hfrag demo`` (what ``make demo`` runs) works offline and retrieves the right passages."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_runs_offline_and_finds_the_answers() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    done = subprocess.run(
        [sys.executable, "-m", "hfrag", "demo", "-k", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert "local server" in lines[0]
    answers = [line for line in lines if line.startswith("  ")]
    assert len(answers) == 3
    assert "Eiffel Tower" in answers[0]
    assert "waggle dance" in answers[1]
    assert "vector store" in answers[2]
