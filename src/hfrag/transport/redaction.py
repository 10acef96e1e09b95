"""Keeping credentials out of messages and logs: what counts as one, and scrubbing them out.

Every credential a client holds (its token, the values of credential-like headers, user-info and
key-like query values of its URLs) is replaced by ``***`` in every error the transport raises and
in every log record of ``hfrag``, ``httpx`` and ``httpcore`` (which log full URLs at INFO and raw
response headers at DEBUG, so an echoing server would otherwise put a token in a log file).
The drivers register their credentials here while they live; :class:`ScrubFilter` reads them.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from hfrag.errors import HfragError, InferenceError

__all__ = [
    "ScrubFilter",
    "forget",
    "register",
    "scrub_error",
    "scrub_exception",
    "scrub_text",
    "sensitive_headers",
]

# Header names and query keys whose values are credentials, or may be.
_SENSITIVE = ("auth", "cookie", "key", "token", "secret", "signature", "password", "sig", "cred")
_MASK = "***"
# Too short to scrub without mangling every message (and too short to be a real credential).
_MIN_LENGTH = 4
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


def is_sensitive(name: str) -> bool:
    """Whether a header name or query key names a credential (``Authorization``, ``api_key``)."""
    lowered = name.lower()
    return any(s in lowered for s in _SENSITIVE)


def sensitive_headers(headers: Mapping[str, str] | None) -> list[str]:
    """Names of ``headers`` whose values may be credentials (``Authorization``, ``X-Api-Key``)."""
    return [name for name in headers or {} if is_sensitive(name)]


def header_secrets(headers: Mapping[str, str]) -> list[str]:
    """The credential values in ``headers`` (and the token part of ``Bearer <token>``)."""
    out: list[str] = []
    for name in sensitive_headers(headers):
        value = headers[name].strip()
        out.append(value)
        scheme, _, rest = value.partition(" ")
        if rest.strip() and scheme.isalpha():
            out.append(rest.strip())
    return out


def url_secrets(url: str) -> list[str]:
    """User-info (and the Basic credential httpx builds from it) and key-like query values."""
    try:
        parts = urlsplit(url)
        out = [p for p in (parts.username, parts.password) if p]
        if parts.username is not None or parts.password is not None:
            pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            out.append(base64.b64encode(pair.encode()).decode())
        out += [v for k, v in parse_qsl(parts.query, keep_blank_values=False) if is_sensitive(k)]
    except ValueError:
        return []
    return out


def scrub_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret (longest first) and any URL user-info replaced by ``***``."""
    for secret in sorted({s for s in secrets if len(s) >= _MIN_LENGTH}, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, _MASK)
    return _USERINFO.sub(r"\1", text) if "@" in text else text


def _scrub_value(value: Any, secrets: Iterable[str]) -> Any:
    if isinstance(value, str):
        return scrub_text(value, secrets)
    if isinstance(value, list):
        return [_scrub_value(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: _scrub_value(v, secrets) for k, v in value.items()}
    return value


def scrub_error(error: InferenceError, secrets: Iterable[str]) -> InferenceError:
    """``error`` with every secret removed from its message, body and text; cause dropped.

    The cause (an httpx exception) is not chained: its text may hold a URL or header value and a
    traceback prints it; what it said is already in the message, scrubbed.
    """
    known = list(secrets)
    error.message = scrub_text(error.message, known)
    error.body = _scrub_value(error.body, known)
    if error.url:
        error.url = scrub_text(error.url, known)
    error.args = (error._render(),)
    error.__cause__ = None
    error.__suppress_context__ = True
    return error


def scrub_exception(error: HfragError, secrets: Iterable[str]) -> HfragError:
    """Any hfrag error without the secrets (an :class:`InferenceError` as :func:`scrub_error`;
    another, such as a ``ConfigurationError`` quoting a server's labels, in its arguments)."""
    if isinstance(error, InferenceError):
        return scrub_error(error, secrets)
    known = list(secrets)
    error.args = tuple(scrub_text(a, known) if isinstance(a, str) else a for a in error.args)
    error.__cause__ = None
    error.__suppress_context__ = True
    return error


# --- what live clients hold, for the log filter ---
#
# ``forget`` runs from ``weakref.finalize``, that is from the garbage collector, which may fire in
# any thread at any allocation: also while this thread holds ``_LOCK`` (in ``register``) or while
# the log filter reads. So ``forget`` never takes the lock (it only queues the id: a deque append
# is atomic), the queue is applied by whoever next holds the lock, and readers take the current
# snapshot (one reference read) without locking. A forgotten secret may be scrubbed a little
# longer than needed; a log call never waits on a collection.

_LOCK = threading.Lock()
_HELD: dict[int, frozenset[str]] = {}
_FORGOTTEN: deque[int] = deque()
_SNAPSHOT: frozenset[str] = frozenset()


def _apply_forgotten() -> None:
    """Drop what collected owners registered, and rebuild the snapshot. Call with ``_LOCK`` held."""
    global _SNAPSHOT
    while _FORGOTTEN:
        _HELD.pop(_FORGOTTEN.popleft(), None)
    _SNAPSHOT = frozenset().union(*_HELD.values()) if _HELD else frozenset()


def register(owner: object, secrets: Iterable[str]) -> None:
    """Add ``secrets`` to what the log filter scrubs while ``owner`` lives (see :func:`forget`)."""
    found = frozenset(s for s in secrets if len(s) >= _MIN_LENGTH)
    if not found:
        return
    with _LOCK:
        # First what collected owners left: a new owner may reuse a collected one's id.
        _apply_forgotten()
        _HELD[id(owner)] = _HELD.get(id(owner), frozenset()) | found
        _apply_forgotten()


def forget(owner_id: int) -> None:
    """Stop scrubbing what the object with this ``id`` registered (it was closed or collected).

    Safe from a finalizer in any thread: it never blocks (see the note above).
    """
    _FORGOTTEN.append(owner_id)
    if _LOCK.acquire(blocking=False):
        try:
            _apply_forgotten()
        finally:
            _LOCK.release()


def held() -> frozenset[str]:
    """Every secret a live client registered (a snapshot; never blocks)."""
    return _SNAPSHOT


class ScrubFilter(logging.Filter):
    """Rewrites a log record whose text holds a registered credential or URL user-info."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a broken record is logging's problem, not ours
            return True
        clean = scrub_text(text, held())
        if clean != text:
            record.msg, record.args = clean, ()
        return True


#: The loggers whose records may carry request URLs or raw headers.
LOGGERS = (
    "hfrag",
    "hfrag.transport",
    "hfrag.tasks",
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
_FILTER = ScrubFilter()


def install_log_filter() -> None:
    """Attach the scrubbing filter to every logger in :data:`LOGGERS` (idempotent).

    Filters on a logger are not inherited by its children, hence one per named logger.
    """
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
