"""Run by ``test_packaging.py`` with the fresh environment's Python: import one extra's modules,
then say what they pulled in.

Usage: ``python wheel_check.py EXTRA MODULE...`` prints one JSON object:

- ``hfrag``: where ``hfrag`` was imported from (it must be the installed wheel);
- ``missing``: requirements of ``hfrag[EXTRA]`` (transitively) that are not installed;
- ``outside``: third-party modules that the loaded hfrag modules import at module level and
  whose distribution is not among those requirements (an import the extra forgot to declare).
  What a dependency imports opportunistically (httpx loads zstandard when it is there) is that
  dependency's business, not the extra's.

Dependencies are visible through a path entry, not installed: the check is that the wheel's
metadata names everything its modules import, without a network.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import sys


def _top_level(body: list[ast.stmt]) -> set[str]:
    """Top-level names imported by module-level statements (not under ``TYPE_CHECKING``)."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Try):
            names |= _top_level(node.body)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.dump(node.test):
            names |= _top_level(node.body) | _top_level(node.orelse)
    return names


def module_level_imports() -> set[str]:
    """What the loaded hfrag modules import when they are imported."""
    names: set[str] = set()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if (name == "hfrag" or name.startswith("hfrag.")) and path and path.endswith(".py"):
            with open(path, encoding="utf-8") as fh:
                names |= _top_level(ast.parse(fh.read()).body)
    return names


def main() -> None:
    extra, modules = sys.argv[1], sys.argv[2:]
    for name in modules:
        importlib.import_module(name)
    import hfrag

    loaded = sorted(module_level_imports() - {"hfrag", "__future__"})

    # Only now import what the analysis needs, so it does not count as loaded by hfrag.
    import importlib.metadata as md

    from packaging.requirements import Requirement

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    needed: set[str] = set()
    missing: list[str] = []
    queue: list[tuple[str, frozenset[str]]] = [("hfrag", frozenset({"", extra}))]
    seen: set[tuple[str, frozenset[str]]] = set()
    while queue:
        dist, extras = queue.pop()
        if (dist, extras) in seen:
            continue
        seen.add((dist, extras))
        needed.add(norm(dist))
        for line in md.requires(dist) or []:
            req = Requirement(line)
            env_extras = extras | {""}
            if req.marker is not None and not any(
                req.marker.evaluate({"extra": e}) for e in env_extras
            ):
                continue
            try:
                version = md.version(req.name)
            except md.PackageNotFoundError:
                missing.append(str(req))
                continue
            if not req.specifier.contains(version, prereleases=True):
                missing.append(f"{req} (installed: {version})")
                continue
            queue.append((req.name, frozenset(req.extras) | {""}))

    owners = md.packages_distributions()
    stdlib = set(sys.stdlib_module_names)
    outside = []
    for top in loaded:
        if top in stdlib:
            continue
        dists = {norm(d) for d in owners.get(top, [])}
        if not dists & needed:
            outside.append(f"{top} ({', '.join(sorted(dists)) or 'no distribution'})")
    print(
        json.dumps(
            {
                "hfrag": os.path.dirname(hfrag.__file__),
                "missing": missing,
                "outside": outside,
            }
        )
    )


if __name__ == "__main__":
    main()
