"""Progress of a long job: a tqdm bar when asked for, a callback for any other UI.

- A bar is drawn for a job of more than one batch only (a one-request call has nothing to show),
  with ``tqdm.auto`` (a widget in Jupyter, text in a terminal).
- One bar at a time, process-wide: a job that starts while another job's bar is on screen runs
  without one, so concurrent calls (``asyncio.gather`` of several ``aembed``) never stack or
  interleave bars. Its callback, if any, is still called.
- ``callback(done, total)`` is called after every batch, whatever the job's size.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from hfrag.errors import ConfigurationError

__all__ = ["ProgressCallback", "progress_bar"]

#: ``callback(done, total)``: inputs finished so far, and the job's size.
ProgressCallback = Callable[[int, int], None]

# Held by the job whose bar is on screen.
_SCREEN = threading.Lock()


def _tqdm(total: int, description: str) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise ConfigurationError(
            "show_progress=True needs tqdm: pip install tqdm (or hfrag[all])"
        ) from exc
    return tqdm(total=total, desc=description, unit="text")


@contextlib.contextmanager
def progress_bar(
    total: int,
    enabled: bool,
    description: str,
    *,
    batches: int = 2,
    callback: ProgressCallback | None = None,
) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)`` for a job of ``total`` inputs cut into ``batches`` requests."""
    bar: Any = None
    if enabled and batches > 1 and _SCREEN.acquire(blocking=False):
        try:
            bar = _tqdm(total, description)
        except BaseException:
            _SCREEN.release()
            raise
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if bar is not None:
            bar.update(n)
        if callback is not None:
            callback(done, total)

    try:
        yield advance
    finally:
        if bar is not None:
            bar.close()
            _SCREEN.release()
