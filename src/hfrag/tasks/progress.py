"""An optional progress bar for long jobs (tqdm when installed and asked for)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from hfrag.errors import ConfigurationError


@contextlib.contextmanager
def progress_bar(total: int, enabled: bool, description: str) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; a tqdm bar when ``enabled``, a no-op otherwise."""
    if not enabled:
        yield lambda _n: None
        return
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise ConfigurationError(
            "show_progress=True needs tqdm: pip install tqdm (or hfrag[all])"
        ) from exc
    bar = tqdm(total=total, desc=description, unit="text")
    try:
        yield bar.update
    finally:
        bar.close()
