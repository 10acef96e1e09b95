"""Server-sent events, as the inference servers send them.

- Lines start with ``data:`` with or without a following space; ``:`` lines are keep-alives;
  a blank line ends an event; the last event may end with the stream instead.
- Chat and completion streams end with ``data: [DONE]`` (either spacing); TGI's
  ``/generate_stream`` sends no ``[DONE]``, the stream just ends.
- A stream whose last event, left without its blank line, is not whole JSON was cut in the
  middle of that event (:func:`is_cut`): a broken connection, not a malformed answer.
- An error can arrive inside a 200 stream, as ``{"error": ..., "error_type": ...}`` (TGI) or
  ``{"error": {"message": ...}}`` (OpenAI style): :func:`decode_event` raises it.

The decoder is fed one line at a time, so the sync and async drivers share it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from hfrag.errors import InferenceError, MalformedResponseError
from hfrag.transport.responses import stream_error
from hfrag.transport.urls import redact_url


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event: its joined ``data`` lines, and ``event``/``id`` when given."""

    data: str
    event: str | None = None
    id: str | None = None


class _Done:
    def __repr__(self) -> str:
        return "DONE"


#: Returned by :func:`decode_event` for the ``[DONE]`` sentinel.
DONE: Final = _Done()


class SSEDecoder:
    """Turns lines into :class:`SSEEvent` objects (the WHATWG event-stream rules)."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None

    def feed(self, line: str) -> SSEEvent | None:
        """Feed one line (without or with its line ending); return an event when one completes."""
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        return None

    def flush(self) -> SSEEvent | None:
        """The event left over when a stream ends without a final blank line."""
        return self._dispatch()

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = None
            return None
        event = SSEEvent("\n".join(self._data), self._event, self._id)
        self._data, self._event = [], None
        return event


def is_cut(last: SSEEvent) -> bool:
    """Whether ``last``, an event the stream ended in (no blank line after it), was cut short:
    neither ``[DONE]`` nor whole JSON. A whole one is kept (some servers omit the last blank
    line)."""
    data = last.data.strip()
    if data == "[DONE]":
        return False
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return True
    return False


def decode_event(event: SSEEvent, url: str | None = None) -> Any:
    """The JSON payload of an event, :data:`DONE` for ``[DONE]``; error events are raised."""
    data = event.data.strip()
    if data == "[DONE]":
        return DONE
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise MalformedResponseError(
            f"stream event is not JSON: {data[:200]!r}",
            status=200,
            url=redact_url(url) if url else None,
        ) from exc
    if event.event == "error" or (isinstance(payload, dict) and payload.get("error")):
        error: InferenceError = stream_error(payload, url)
        raise error
    return payload
