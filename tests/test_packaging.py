"""The package as users get it: the version follows CHANGELOG.md, the sdist and wheel build and
pass ``twine check``, and the wheel installed into a fresh virtual environment imports each
extra's modules, with every module they import declared by that extra.

The wheel test needs no network: the wheel is built without build isolation (hatchling is in the
dev extra), installed with ``--no-index --no-deps``, and the fresh environment sees the
dependencies through a path entry to this environment's site-packages; ``wheel_check.py`` then
proves that the wheel's metadata requires every distribution the imports loaded.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import hfrag

ROOT = Path(__file__).resolve().parents[1]

#: The modules each extra exists for. An extra not listed here is checked for its requirements only.
EXTRA_MODULES: dict[str, list[str]] = {
    "": ["hfrag", "hfrag.errors", "hfrag.transport", "hfrag.tasks", "hfrag.cli"],
    "langchain": ["hfrag.langchain"],
    "llama-index": ["hfrag.llama_index"],
    "server": ["hfrag.server", "hfrag.server.testing"],
    "local": ["hfrag.server", "hfrag.server.testing"],
    "all": ["hfrag.langchain", "hfrag.llama_index", "hfrag.server", "hfrag.server.testing"],
}
#: Extras of tools, not of modules.
TOOL_EXTRAS = {"dev", "bench"}


def changelog_versions() -> list[str]:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    return re.findall(r"^## \[(\d+\.\d+\.\d+[^\]]*)\]", text, flags=re.MULTILINE)


def test_version_follows_the_changelog() -> None:
    versions = changelog_versions()
    assert versions, "CHANGELOG.md has no version heading"
    assert hfrag.__version__ == versions[0]


def test_changelog_starts_with_unreleased() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## \[([^\]]+)\]", text, flags=re.MULTILINE)
    assert headings[0] == "Unreleased"


def run(*args: str | Path, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and wheel, built from this checkout without network."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT, cwd=out)
    return out


@pytest.fixture(scope="module")
def fresh_python(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with the wheel installed and this one's packages visible."""
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    wheel = next(dist.glob("hfrag-*.whl"))
    run(
        sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-index",
        "--no-deps", wheel,
    )  # fmt: skip
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    # Appended after the environment's own site-packages: the wheel's hfrag comes first, and
    # .pth files in these directories (this checkout's editable install) are not processed.
    Path(purelib.strip(), "zz_parent_env.pth").write_text("\n".join(sorted(here)) + "\n")
    return python


@pytest.mark.slow
def test_twine_check_passes(dist: Path) -> None:
    files = sorted(dist.iterdir())
    assert {f.suffix for f in files} >= {".whl", ".gz"}
    out = run(sys.executable, "-m", "twine", "check", "--strict", *files)
    assert out.count("PASSED") == 2


@pytest.mark.slow
def test_wheel_and_sdist_hold_what_users_need(dist: Path) -> None:
    wheel = next(dist.glob("hfrag-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "hfrag/py.typed" in names
    assert "hfrag/server/testing.py" in names
    assert not any(n.startswith("tests/") for n in names)
    metadata = zipfile.ZipFile(wheel).read(f"hfrag-{hfrag.__version__}.dist-info/METADATA").decode()
    assert f"Version: {hfrag.__version__}" in metadata
    assert "# hfrag" in metadata  # the README is the long description
    sdist = next(dist.glob("hfrag-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    assert {"README.md", "CHANGELOG.md", "docs/MIGRATING.md", "pyproject.toml"} <= members


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_environment(fresh_python: Path, dist: Path) -> None:
    wheel = next(dist.glob("hfrag-*.whl"))
    extras = set(zipfile.ZipFile(wheel).read(
        f"hfrag-{hfrag.__version__}.dist-info/METADATA"
    ).decode().split("Provides-Extra: ")[1:])  # fmt: skip
    extras = {e.splitlines()[0].strip() for e in extras} - TOOL_EXTRAS
    assert {"langchain", "llama-index", "server"} <= extras
    check = Path(__file__).with_name("wheel_check.py")
    for extra in sorted(extras | {""}):
        modules = EXTRA_MODULES.get(extra, [])
        # -I: the script's directory (tests/, with its own llama_index package) is not on sys.path
        out = run(fresh_python, "-I", check, extra, *modules, cwd=fresh_python.parents[1])
        result = json.loads(out)
        where = f"hfrag[{extra}]" if extra else "hfrag"
        assert result["hfrag"].startswith(str(fresh_python.parents[1])), where
        assert result["missing"] == [], f"{where} requires what is not installed"
        assert result["outside"] == [], f"{where} imports what it does not declare"
    version = run(fresh_python.parent / "hfrag", "--version")
    assert version.strip() == f"hfrag {hfrag.__version__}"


@pytest.mark.slow
def test_base_install_imports_no_framework(fresh_python: Path) -> None:
    code = (
        "import sys, hfrag, hfrag.tasks, hfrag.transport\n"
        "print(sorted(m for m in ('langchain_core', 'llama_index', 'aiohttp', 'pydantic') "
        "if m in sys.modules))"
    )
    assert run(fresh_python, "-c", code).strip() == "[]"


def make_rule(target: str) -> tuple[str, list[str]]:
    """The prerequisites and recipe lines of ``target`` in the Makefile."""
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return lines[start].split(":", 1)[1].strip(), recipe


def test_make_dist_builds_in_a_minimal_environment() -> None:
    # Not after installing .[all,dev] (llama.cpp's build, every framework): build and twine only.
    prerequisites, recipe = make_rule("dist")
    assert prerequisites == "$(DIST_STAMP)"
    assert all("$(PY) " not in line for line in recipe)
    assert any(line.startswith("$(DIST_PY) -m build") for line in recipe)
    _, setup = make_rule("$(DIST_STAMP)")
    installs = [line for line in setup if "pip install" in line]
    assert installs == ['$(DIST_PY) -m pip install --quiet "build>=1.2" "twine>=6.1"']
