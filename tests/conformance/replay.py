"""Recorded real answers, replayed byte for byte by a small HTTP server on 127.0.0.1.

The fixtures are in ``recordings/``, each listed with its source (repository, commit, path, git
blob id) and licence in ``recordings/SOURCES.json``:

- ``huggingface_hub/*.yaml``: huggingface_hub's VCR.py cassettes of its InferenceClient tests
  against the real router, providers and api-inference, as committed. Each interaction holds the
  request (method, URL, body) and the answer (status, headers, body). vcrpy stores the body as
  the UTF-8 text the server sent; encoding it back gives the bytes.
- ``tgi/*.json``: text-generation-inference's integration-test snapshots (syrupy), as committed:
  the parsed JSON answers of a real TGI, keys sorted and indented by syrupy. They are
  re-serialised here as TGI's router writes them: compact JSON (serde_json), a stream as one
  ``data: {json}`` event per chunk (axum's ``Sse`` with ``json_data``) ending with
  ``data: [DONE]`` (``router/src/server.rs``: ``Event::default().data("[DONE]")``). Key order is
  syrupy's, not the wire's: JSON objects are unordered, so no decoder may depend on it.

The server answers each request with the next recording queued for its path: the recorded
status, content type and body, the body written in several pieces (a stream cut inside events
and inside lines), so a client meets the read boundaries of a real network. It keeps every
request it received, for the tests to compare with the recorded one (:func:`differences`).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.reliability.rawserver import RawRequest as Received

RECORDINGS = Path(__file__).parent / "recordings"
SOURCES: dict[str, dict[str, str]] = json.loads((RECORDINGS / "SOURCES.json").read_text())


@dataclass(frozen=True)
class Exchange:
    """One recorded request and the answer the real server gave to it."""

    fixture: str
    method: str
    url: str
    request: bytes | None
    status: int
    content_type: str
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def request_json(self) -> Any:
        assert self.request is not None, f"{self.fixture}: the recorded request has no body"
        return json.loads(self.request)

    def answer_json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[Any]:
        """The recorded stream's ``data:`` payloads, JSON-decoded (``[DONE]`` kept as a string)."""
        out: list[Any] = []
        for line in self.body.decode().splitlines():
            if line.startswith("data:"):
                data = line[5:].strip()
                out.append(data if data == "[DONE]" else json.loads(data))
        return out


def blob_id(data: bytes) -> str:
    """git's id of a file's content: what SOURCES.json records for each fixture."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def cassette(name: str) -> list[Exchange]:
    """The POSTs of a huggingface_hub cassette (its Hub model look-ups are not hfrag's)."""
    fixture = f"huggingface_hub/{name}.yaml"
    recorded = yaml.safe_load((RECORDINGS / fixture).read_bytes())
    out = []
    for item in recorded["interactions"]:
        request, answer = item["request"], item["response"]
        if request["method"] != "POST":
            continue
        headers = {k.lower(): v for k, v in answer["headers"].items()}
        body = request["body"]
        out.append(
            Exchange(
                fixture=fixture,
                method=request["method"],
                url=request["uri"],
                request=body.encode() if isinstance(body, str) else body,
                status=int(answer["status"]["code"]),
                content_type=headers.get("content-type", ["application/json"])[0],
                body=answer["body"]["string"].encode(),
            )
        )
    return out


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def tgi_snapshot(name: str, *, path: str = "/v1/chat/completions") -> Exchange:
    """A TGI snapshot as TGI sends it: one JSON body, or (a list of chunks) an SSE stream."""
    fixture = f"tgi/{name}.json"
    parsed = json.loads((RECORDINGS / fixture).read_bytes())
    if isinstance(parsed, list):
        body = b"".join(b"data: " + _compact(chunk) + b"\n\n" for chunk in parsed)
        body, content_type = body + b"data: [DONE]\n\n", "text/event-stream"
    else:
        body, content_type = _compact(parsed), "application/json"
    return Exchange(fixture, "POST", path, None, 200, content_type, body)


def derived(answer: Any, what: str, status: int = 200) -> Exchange:
    """An answer built from recorded ones (named ``derived:...``): for shapes no recording has."""
    body = _compact(answer)
    return Exchange(f"derived:{what}", "POST", "/", None, status, "application/json", body)


def pieces(body: bytes) -> list[bytes]:
    """The body cut for writing: a stream inside every other line (mid-event, mid-JSON) and
    between some events; a JSON body in three."""
    if b"\n" not in body.strip():
        third = max(1, len(body) // 3)
        return [p for p in (body[:third], body[third : 2 * third], body[2 * third :]) if p]
    out: list[bytes] = []
    start = offset = 0
    for i, line in enumerate(body.splitlines(keepends=True)):
        if i % 2 == 0 and len(line) > 2:  # cut inside this line
            out.append(body[start : offset + len(line) // 2])
            start = offset + len(line) // 2
        offset += len(line)
        if i % 3 == 2:  # and after this one
            out.append(body[start:offset])
            start = offset
    out.append(body[start:])
    assert b"".join(out) == body
    return [p for p in out if p]


@dataclass
class _State:
    queue: list[tuple[str, Exchange]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    writes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._answer(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._answer(self.rfile.read(length))

    def _answer(self, body: bytes) -> None:
        state = self.server.state
        path = urlsplit(self.path).path
        with state.lock:
            state.received.append(Received(self.command, path, dict(self.headers), body))
            match = next((i for i, (p, _) in enumerate(state.queue) if p == path), None)
            exchange = None if match is None else state.queue.pop(match)[1]
        if exchange is None:
            message = f"no recording for {self.command} {path}".encode()
            self.send_response(501)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(message)))
            self.end_headers()
            self.wfile.write(message)
            return
        self.send_response(exchange.status)
        self.send_header("Content-Type", exchange.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        for piece in pieces(exchange.body):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
            with state.lock:
                state.writes += 1
            time.sleep(0.001)  # let the client read this piece on its own
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class ReplayServer:
    """Answers requests with recorded answers (see the module docstring).

    Example::

        with ReplayServer() as replay:
            replay.serve(cassette("...")[0], at="/v1/chat/completions")
            ChatClient(endpoint_url=replay.url).chat(...)
            replay.received[0].json()
    """

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = _State()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def serve(self, exchange: Exchange, at: str | None = None) -> None:
        """Queue ``exchange`` for the next request to ``at`` (default: its recorded path)."""
        with self._server.state.lock:
            self._server.state.queue.append((at or exchange.path, exchange))

    def reset(self) -> None:
        self._server.state = _State()

    @property
    def received(self) -> list[Received]:
        return [r for r in self._server.state.received if r.method == "POST"]

    @property
    def pending(self) -> list[str]:
        return [f"{path} ({e.fixture})" for path, e in self._server.state.queue]

    @property
    def writes(self) -> int:
        return self._server.state.writes

    def __enter__(self) -> ReplayServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


_ABSENT = object()


def differences(recorded: dict[str, Any], sent: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Top-level body keys whose values differ: ``{key: (recorded, sent)}``.

    A key the recording sent as ``null`` and hfrag leaves out is not a difference: the servers
    recorded here treat an explicit null as "not given" (OpenAI's and TGI's schemas mark these
    fields optional and nullable; TGI ``router/src/lib.rs`` declares them ``Option<...>``).
    """
    out: dict[str, tuple[Any, Any]] = {}
    for key in recorded.keys() | sent.keys():
        a, b = recorded.get(key, _ABSENT), sent.get(key, _ABSENT)
        if a is None and b is _ABSENT:
            continue
        if a != b:
            out[key] = (None if a is _ABSENT else a, None if b is _ABSENT else b)
    return out
