"""A raw HTTP/1.1 server over asyncio streams, for what a well-behaved server cannot do.

Each path is answered by a behaviour: an async function given the parsed request and the stream
writer, free to send anything (a dripping body, an endless one, a redirect, a bad status line,
headers echoed back). Every connection is closed after one answer. It runs on its own loop in a
daemon thread and records every request it reads.

Example::

    with RawServer() as srv:
        srv.route("/slow", drip(b"[[1.0]]", interval=0.5))
        httpx.post(srv.url + "/slow", json={})
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any


@dataclass
class RawRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Behaviour = Callable[[RawRequest, asyncio.StreamWriter], Awaitable[None]]
#: The route of every path that has no route of its own (``srv.route(ANY, hang())``).
ANY = "*"


@dataclass
class Stats:
    requests: list[RawRequest] = field(default_factory=list)
    bytes_sent: int = 0
    #: Answers whose client closed the connection before the answer ended.
    disconnects: int = 0

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


class RawServer:
    """A scripted HTTP server on 127.0.0.1 (see the module docstring)."""

    def __init__(self) -> None:
        self.routes: dict[str, Behaviour] = {}
        self.stats = Stats()
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.base_events.Server | None = None

    def reset(self) -> None:
        """Forget routes and statistics; end any answer still being sent (an endless body)."""
        asyncio.run_coroutine_threadsafe(self._cancel_all(), self._loop).result(5)
        self.routes.clear()
        self.stats = Stats()

    async def _cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def route(self, path: str, behaviour: Behaviour) -> None:
        self.routes[path] = behaviour

    def __enter__(self) -> RawServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(5)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._cancel_all()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            request = await _read_request(reader)
            if request is None:
                return
            stats = self.stats
            stats.requests.append(request)
            path = request.path.split("?", 1)[0]
            behaviour = self.routes.get(path) or self.routes.get(ANY, not_found)
            counted = _CountingWriter(writer, stats)
            try:
                await behaviour(request, counted)  # type: ignore[arg-type]
            except ConnectionError:
                stats.disconnects += 1
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            with contextlib.suppress(Exception):
                writer.close()


class _CountingWriter:
    def __init__(self, writer: asyncio.StreamWriter, stats: Stats) -> None:
        self._writer = writer
        self._stats = stats

    def write(self, data: bytes) -> None:
        self._stats.bytes_sent += len(data)
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    def is_closing(self) -> bool:
        return self._writer.is_closing()


async def _read_request(reader: asyncio.StreamReader) -> RawRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    return RawRequest(method, path, headers, body)


# --- behaviours ---


def head(status: int | str, headers: dict[str, str] | None = None, reason: str = "X") -> bytes:
    """A status line and headers (``Connection: close`` added)."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in {**(headers or {}), "Connection": "close"}.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def respond(
    status: int | str, body: Any = b"", headers: dict[str, str] | None = None, reason: str = "X"
) -> Behaviour:
    """A complete answer; a non-bytes body is sent as JSON."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    extra = {"Content-Type": "application/json", "Content-Length": str(len(data))}

    async def behaviour(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(head(status, {**extra, **(headers or {})}, reason) + data)
        await writer.drain()

    return behaviour


def raw(data: bytes) -> Behaviour:
    """Exactly these bytes, then close."""

    async def behaviour(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()

    return behaviour


def drip(body: bytes, interval: float, *, declared: bool = True, step: int = 1) -> Behaviour:
    """A 200 whose body arrives ``step`` bytes every ``interval`` seconds."""

    async def behaviour(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        headers = {"Content-Type": "application/json"}
        if declared:
            headers["Content-Length"] = str(len(body))
        writer.write(head(200, headers))
        await writer.drain()
        for i in range(0, len(body), step):
            await asyncio.sleep(interval)
            writer.write(body[i : i + step])
            await writer.drain()

    return behaviour


def endless(
    chunk: bytes = b"[[0.5, 0.5, 0.5, 0.5]," * 100,
    interval: float = 0.0,
    content_type: str = "application/json",
) -> Behaviour:
    """A 200 whose body never ends (no Content-Length: it runs until the connection closes)."""

    async def behaviour(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(head(200, {"Content-Type": content_type}))
        while True:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(interval)

    return behaviour


def hang() -> Behaviour:
    """Read the request, then never answer."""

    async def behaviour(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    return behaviour


def embeddings(dim: int = 4, delay: float = 0.0) -> Behaviour:
    """A TEI-like ``/embed``: one vector per input, after ``delay`` seconds."""

    async def behaviour(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(delay)
        n = len(request.json()["inputs"])
        await respond(200, [[1.0] * dim for _ in range(n)])(request, writer)

    return behaviour


def echo_credentials(status: int = 500) -> Behaviour:
    """An error whose body and headers repeat every request header back (a careless proxy)."""

    async def behaviour(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        body = {
            "error": f"rejected request with headers {request.headers}",
            "seen": request.headers,
        }
        echoed = {f"X-Echo-{k}": v for k, v in request.headers.items() if k != "content-length"}
        await respond(status, body, echoed)(request, writer)

    return behaviour


async def not_found(request: RawRequest, writer: asyncio.StreamWriter) -> None:
    await respond(404, {"error": "no such route"})(request, writer)


def sse_event(payload: Any) -> bytes:
    """One server-sent event: ``data: <JSON>`` (bytes pass as they are) and a blank line."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return b"data: " + data + b"\n\n"


def sse(
    events: list[Any],
    *,
    then: str = "close",
    interval: float = 0.0,
    prefix: bytes = b"",
    content_type: str = "text/event-stream",
) -> Behaviour:
    """A 200 event stream of ``events`` (JSON payloads, or raw bytes), ``interval`` apart, then:
    ``close`` the connection, send ``done`` (``data: [DONE]``) and close, or ``hold`` it open
    sending keep-alive comments until the client leaves (counted in ``stats.disconnects``)."""

    async def behaviour(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(head(200, {"Content-Type": content_type}) + prefix)
        for event in events:
            writer.write(sse_event(event))
            await writer.drain()
            await asyncio.sleep(interval)
        if then == "done":
            writer.write(b"data: [DONE]\n\n")
        await writer.drain()
        while then == "hold":
            await asyncio.sleep(0.05)
            writer.write(b": keep-alive\n\n")
            await writer.drain()

    return behaviour


def in_turn(*behaviours: Behaviour) -> Behaviour:
    """Each request gets the next behaviour; the last one answers every request after."""
    count = 0

    async def behaviour(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        chosen = behaviours[min(count, len(behaviours) - 1)]
        count += 1
        await chosen(request, writer)

    return behaviour
