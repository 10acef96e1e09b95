"""A catalogue of malformed answers, each with the typed error it must give, for every public class.

Generic answers (an HTML page, truncated JSON, the wrong JSON type, a redirect, a dropped
connection...) go to every class; answers shaped almost like the right one (wrong counts, ragged
vectors, NaN, wrong field types) go to the classes of their kind. Never a KeyError, IndexError,
AttributeError, pydantic error or a silently wrong result.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pytest

from hfrag.errors import (
    BackendError,
    InferenceConnectionError,
    InferenceError,
    InferenceTimeoutError,
    MalformedResponseError,
    RedirectError,
)
from hfrag.server.state import CannedResponse
from hfrag.server.testing import ServerHandle
from hfrag.tasks import EmbeddingOptions, TextDelta
from tests.reliability.classes import INPUTS, SUBJECTS, Subject, close
from tests.reliability.rawserver import ANY, RawRequest, RawServer, hang, head

pytestmark = pytest.mark.timeout(60)

HTML = "<html><body><h1>Welcome to nginx!</h1></body></html>"

#: id -> (answer, expected error), for every class.
GENERIC: dict[str, tuple[CannedResponse, type[Exception]]] = {
    "html-200": (CannedResponse(200, HTML, content_type="text/html"), MalformedResponseError),
    "truncated-json": (
        CannedResponse(200, b"[[0.1, 0.2", content_type="application/json"),
        MalformedResponseError,
    ),
    "empty-200": (CannedResponse(200, b"", content_type="application/json"), InferenceError),
    "json-null": (CannedResponse(200, b"null", content_type="application/json"), InferenceError),
    "json-string": (CannedResponse(200, b'"ok"', content_type="application/json"), InferenceError),
    "json-number": (CannedResponse(200, b"42", content_type="application/json"), InferenceError),
    "json-empty-object": (CannedResponse(200, {}), MalformedResponseError),
    "plain-text-200": (CannedResponse(200, "all good"), MalformedResponseError),
    "redirect-307": (
        CannedResponse(307, b"", headers={"Location": "http://127.0.0.1:9/x"}),
        RedirectError,
    ),
    "redirect-301": (
        CannedResponse(301, b"", headers={"Location": "http://127.0.0.1:9/x"}),
        RedirectError,
    ),
    "dropped": (CannedResponse(drop=True), InferenceConnectionError),
    "html-502": (CannedResponse(502, HTML, content_type="text/html"), BackendError),
    "error-in-200": (CannedResponse(200, {"error": "CUDA out of memory"}), InferenceError),
    "array-of-null": (CannedResponse(200, [None, None]), InferenceError),
    "deeply-nested": (
        CannedResponse(200, b"[" * 100_000 + b"]" * 100_000, content_type="application/json"),
        InferenceError,
    ),
    "bad-utf8": (
        CannedResponse(200, b'[[0.1, "\xff\xfe"]]', content_type="application/json"),
        InferenceError,
    ),
}

#: Almost the right shape, per kind.
BY_KIND: dict[str, dict[str, tuple[CannedResponse, type[Exception]]]] = {
    "embed": {
        "too-few-vectors": (CannedResponse(200, [[0.1, 0.2]]), MalformedResponseError),
        "too-many-vectors": (CannedResponse(200, [[0.1]] * 3), MalformedResponseError),
        "ragged": (CannedResponse(200, [[0.1, 0.2], [0.3]]), MalformedResponseError),
        "nan": (
            CannedResponse(200, b"[[NaN, 0.2], [0.1, 0.2]]", content_type="application/json"),
            MalformedResponseError,
        ),
        "strings": (CannedResponse(200, [["a", "b"], ["c", "d"]]), MalformedResponseError),
        "flat": (CannedResponse(200, [0.1, 0.2]), MalformedResponseError),
        "nulls": (CannedResponse(200, [[None, 0.2], [0.1, 0.2]]), MalformedResponseError),
        "empty-vectors": (CannedResponse(200, [[], []]), MalformedResponseError),
    },
    "rerank": {
        "too-few-scores": (CannedResponse(200, [{"index": 0, "score": 0.5}]), InferenceError),
        "index-out-of-range": (
            CannedResponse(200, [{"index": 0, "score": 0.5}, {"index": 7, "score": 0.1}]),
            MalformedResponseError,
        ),
        "duplicate-index": (
            CannedResponse(200, [{"index": 0, "score": 0.5}, {"index": 0, "score": 0.1}]),
            MalformedResponseError,
        ),
        "score-string": (
            CannedResponse(200, [{"index": 0, "score": "x"}, {"index": 1, "score": 0.1}]),
            MalformedResponseError,
        ),
        "no-score": (CannedResponse(200, [{"index": 0}, {"index": 1}]), MalformedResponseError),
        "nan-score": (
            CannedResponse(
                200,
                b'[{"index": 0, "score": NaN}, {"index": 1, "score": 0.1}]',
                content_type="application/json",
            ),
            MalformedResponseError,
        ),
        "list-of-numbers": (CannedResponse(200, [0.1, 0.2]), MalformedResponseError),
    },
    "generate": {
        "no-choices": (CannedResponse(200, {"choices": []}), MalformedResponseError),
        "choice-without-message": (CannedResponse(200, {"choices": [{}]}), MalformedResponseError),
        "content-number": (
            CannedResponse(200, {"choices": [{"message": {"role": "assistant", "content": 5}}]}),
            MalformedResponseError,
        ),
        "list-of-nothing": (CannedResponse(200, []), MalformedResponseError),
        "generated-text-number": (
            CannedResponse(200, [{"generated_text": 5}]),
            MalformedResponseError,
        ),
    },
}

CASES = [(s, c, *GENERIC[c]) for s in SUBJECTS for c in GENERIC] + [
    (s, c, *BY_KIND[s.kind][c]) for s in SUBJECTS for c in BY_KIND[s.kind]
]


@pytest.mark.parametrize(
    ("subject", "case", "answer", "error"), CASES, ids=[f"{s}-{c}" for s, c, _, _ in CASES]
)
def test_a_malformed_answer_gives_its_typed_error(
    server: ServerHandle, subject: Subject, case: str, answer: CannedResponse, error: Any
) -> None:
    obj = subject.build(server.url, max_retries=0)
    try:
        server.script(None, *[answer] * 5)
        with pytest.raises(Exception) as info:
            subject.call(obj, INPUTS[subject.kind])
        raised = info.value
        assert isinstance(raised, error), f"{type(raised).__name__}: {raised}"
    finally:
        close(obj)


# -- base64 vectors (the OpenAI form, encoding_format="base64"), for the embedding classes --------


def _b64(*values: float) -> str:
    return base64.b64encode(np.array(values, dtype="<f4").tobytes()).decode("ascii")


def _openai(*embeddings: Any) -> CannedResponse:
    data = [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(embeddings)]
    return CannedResponse(200, {"object": "list", "data": data, "model": "m"})


#: id -> answer to two texts; each is a MalformedResponseError naming the batch.
BASE64: dict[str, CannedResponse] = {
    # Decoded with the stray characters skipped, each would be one float32: the right length.
    "b64-invalid-characters": _openai("AAC$APw==", "AAC!APw=="),
    "b64-not-ascii": _openai("AACAP\u00e9==", _b64(1.0)),
    "b64-wrong-length": _openai(_b64(1.0, 2.0), _b64(1.0)),
    "b64-not-whole-float32": _openai("AAAAAAA=", "AAAAAAA="),
    "b64-nan-bytes": _openai(_b64(float("nan"), 1.0), _b64(1.0, 2.0)),
    "b64-infinity-bytes": _openai(_b64(1.0, 2.0), _b64(float("inf"), 1.0)),
    "b64-mixed-with-floats": _openai(_b64(1.0, 2.0), [1.0, 2.0]),
}
EMBEDDERS = [s for s in SUBJECTS if s.kind == "embed"]


@pytest.mark.parametrize("case", list(BASE64))
@pytest.mark.parametrize("subject", EMBEDDERS, ids=str)
def test_bad_base64_vectors_are_malformed(
    server: ServerHandle, subject: Subject, case: str
) -> None:
    # The task client takes its embedding settings as options; the adapters as fields.
    base64_form: dict[str, Any] = (
        {"options": EmbeddingOptions(encoding_format="base64")}
        if subject.name == "EmbeddingsClient"
        else {"encoding_format": "base64"}
    )
    obj = subject.make(endpoint_url=server.url + "/v1", max_retries=0, **base64_form)
    try:
        server.script("/v1/embeddings", *[BASE64[case]] * 5)
        with pytest.raises(MalformedResponseError) as info:
            subject.call(obj, INPUTS["embed"])
        assert "inputs 0-1" in str(info.value)
        assert server.counters.total("/v1/embeddings", 200) == 1  # the scripted answer was read
    finally:
        close(obj)


# -- a server that never answers ------------------------------------------------------------------


async def _silent_after_headers(request: RawRequest, writer: asyncio.StreamWriter) -> None:
    writer.write(head(200, {"Content-Type": "application/json", "Content-Length": "100"}))
    await writer.drain()
    await asyncio.sleep(3600)


#: id -> (behaviour, settings): one attempt bounded by ``timeout``, or retries bounded by the
#: call's ``deadline``. Each raises InferenceTimeoutError, never hangs (the test's own timeout).
#: Half a second per attempt: on a loaded machine, less may end before the request is even read.
SILENT: dict[str, tuple[Any, dict[str, Any]]] = {
    "never-answers": (hang(), {"timeout": 0.5, "max_retries": 0}),
    "never-answers-deadline": (hang(), {"timeout": 0.5, "max_retries": 10, "deadline": 1.2}),
    "silent-after-headers": (_silent_after_headers, {"timeout": 0.5, "max_retries": 0}),
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("case", list(SILENT))
@pytest.mark.parametrize("subject", SUBJECTS, ids=str)
def test_a_server_that_never_answers_raises_a_timeout(
    raw_server: RawServer, subject: Subject, case: str
) -> None:
    behaviour, settings = SILENT[case]
    raw_server.route(ANY, behaviour)
    obj = subject.build(raw_server.url, max_retry_wait=0.05, **settings)
    try:
        start = time.monotonic()
        with pytest.raises(InferenceTimeoutError):
            subject.call(obj, INPUTS[subject.kind])
        # Bounded by the attempt's timeout or the call's deadline (a /info probe of 0.5 s may
        # come first), plus slack for a loaded machine: far below the test's own timeout.
        assert time.monotonic() - start < settings.get("deadline", 2 * settings["timeout"]) + 3.0
        assert raw_server.stats.requests, "nothing reached the server: the check proves nothing"
    finally:
        close(obj)


# -- a stream cut mid-event, for the streaming classes ---------------------------------------------


def _text(chunks: Iterable[Any]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, TextDelta))


def _li_stream(obj: Any, prompt: str) -> str:
    from llama_index.core.llms import ChatMessage

    return "".join(
        r.delta or "" for r in obj.stream_chat([ChatMessage(role="user", content=prompt)])
    )


#: The whole streamed answer of each class that streams (a cut stream must raise instead).
STREAMS: dict[str, Callable[[Any, str], str]] = {
    "ChatClient": lambda o, v: _text(o.stream_chat([{"role": "user", "content": v}])),
    "TextGenerationClient": lambda o, v: _text(o.stream(v)),
    "lc.ChatHuggingFaceInference": lambda o, v: "".join(str(c.content) for c in o.stream(v)),
    "lc.HuggingFaceInferenceLLM": lambda o, v: "".join(o.stream(v)),
    "li.HuggingFaceInferenceLLM": _li_stream,
}
STREAMERS = [s for s in SUBJECTS if s.name in STREAMS]

#: One whole event, then half of the next, of each stream form (chat chunks; TGI tokens).
CHAT_EVENTS = (
    b'data: {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Paris"}}]}\n\n'
    b'data: {"choices": [{"index": 0, "delta": {"content": " is the cap'
)
TGI_EVENTS = (
    b'data:{"token": {"id": 1, "text": "Paris", "logprob": 0.0, "special": false}, '
    b'"generated_text": null, "details": null}\n\ndata:{"token": {"id": 2, "te'
)


def _cut_stream(chunked: bool) -> Any:
    """A 200 event stream cut in the middle of its second event, then the connection closed:
    ``chunked`` cuts inside a chunk (a broken body); otherwise the body just ends there (its
    length is the connection's)."""

    async def behaviour(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        events = CHAT_EVENTS if request.path.endswith("/chat/completions") else TGI_EVENTS
        headers = {"Content-Type": "text/event-stream"}
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
            events = f"{len(events) + 40:x}\r\n".encode() + events
        writer.write(head(200, headers) + events)
        await writer.drain()

    return behaviour


CUT: dict[str, tuple[str, Any]] = {
    "stream-cut-mid-event-chunked": ("raw", _cut_stream(chunked=True)),
    "stream-cut-mid-event-closed": ("raw", _cut_stream(chunked=False)),
    # hfrag's own server ends the response cleanly after half an event.
    "stream-ends-mid-event": (
        "local",
        CannedResponse(sse=[*CHAT_EVENTS.decode().split("\n")]),
    ),
}


@pytest.mark.parametrize("case", list(CUT))
@pytest.mark.parametrize("subject", STREAMERS, ids=str)
def test_a_stream_cut_mid_event_raises_never_a_shorter_answer(
    server: ServerHandle, raw_server: RawServer, subject: Subject, case: str
) -> None:
    where, answer = CUT[case]
    if where == "raw":
        raw_server.route(ANY, answer)
        obj = subject.build(raw_server.url, max_retries=0)
    else:
        server.script(None, *[answer] * 5)
        obj = subject.build(server.url, max_retries=0)
    try:
        with pytest.raises(InferenceConnectionError):
            STREAMS[subject.name](obj, INPUTS["generate"])
    finally:
        close(obj)


# -- the catalogue ---------------------------------------------------------------------------------


def cases_for(subject: Subject) -> list[str]:
    """Every malformed answer this module gives ``subject`` (each row states its outcome)."""
    names = list(GENERIC) + list(BY_KIND[subject.kind]) + list(SILENT)
    if subject in EMBEDDERS:
        names += list(BASE64)
    if subject in STREAMERS:
        names += list(CUT)
    return names


def test_every_streaming_class_is_streamed() -> None:
    assert sorted(STREAMS) == sorted(s.name for s in SUBJECTS if s.kind == "generate")


def test_the_catalogue_is_large_enough() -> None:
    for subject in SUBJECTS:
        names = cases_for(subject)
        assert len(names) == len(set(names))
        assert len(names) >= 20, subject
