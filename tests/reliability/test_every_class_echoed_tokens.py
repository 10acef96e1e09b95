"""A server that echoes the ``Authorization`` value into a malformed answer never gets it shown.

Each decoder that quotes what the server sent (an index, a score, a whole event) is given the
credential inside its answer, through every public class that uses it; the error the caller
sees (message, ``args``, ``body``, traceback) must not hold it. The transport scrubs its own
errors; these errors are built later, by the task decoders, and are scrubbed where they leave
hfrag (``TaskClient.run``/``arun`` and the stream wrappers).
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from hfrag.errors import HfragError
from tests.adapters import PLANTED
from tests.reliability.classes import INPUTS, SUBJECTS, Subject, close
from tests.reliability.rawserver import RawRequest, RawServer, respond, sse
from tests.reliability.test_every_class_malformed_responses import STREAMS

pytestmark = pytest.mark.timeout(60)

Answer = Callable[[str], Any]


@dataclass(frozen=True)
class Echo:
    """A decoder's malformed answer: ``endpoint`` is appended to the server's URL; ``routes``
    map each path to the answer made from the echoed ``Authorization`` value."""

    kind: str
    endpoint: str
    routes: dict[str, Answer]
    stream: bool = False


def _chat_answer(auth: str) -> Any:
    return {"choices": [{"message": {"role": "assistant", "content": {"echo": auth}}}]}


ECHOES: dict[str, Echo] = {
    "openai-embeddings-index": Echo(
        "embed",
        "/v1",
        {
            "/v1/embeddings": lambda a: {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": a, "embedding": [0.1, 0.2]},
                    {"object": "embedding", "index": 1, "embedding": [0.1, 0.2]},
                ],
            }
        },
    ),
    "tei-embed-value": Echo("embed", "/embed", {"/embed": lambda a: [[0.1, a], [0.1, 0.2]]}),
    "tei-rerank-index": Echo(
        "rerank",
        "/rerank",
        {"/rerank": lambda a: [{"index": a, "score": 0.5}, {"index": 1, "score": 0.1}]},
    ),
    "cohere-rerank-score": Echo(
        "rerank",
        "/v1/rerank",
        {
            "/v1/rerank": lambda a: {
                "results": [
                    {"index": 0, "relevance_score": a},
                    {"index": 1, "relevance_score": 0.1},
                ]
            }
        },
    ),
    "tgi-generate": Echo(
        "generate",
        "/generate",
        {
            "/generate": lambda a: {"generated_text": None, "echo": a},
            "/v1/chat/completions": _chat_answer,
        },
    ),
    "tgi-generate-stream": Echo(
        "generate",
        "/generate",
        {
            "/generate_stream": lambda a: [{"echo": a}],
            "/v1/chat/completions": lambda a: [{"choices": [{"delta": {"content": {"x": a}}}]}],
        },
        stream=True,
    ),
    "chat-answer": Echo("generate", "/v1", {"/v1/chat/completions": _chat_answer}),
}

CASES = [
    (s, c)
    for c, echo in ECHOES.items()
    for s in SUBJECTS
    if s.kind == echo.kind and (not echo.stream or s.name in STREAMS)
]


def _echoing(answer: Answer, stream: bool) -> Any:
    async def behaviour(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        auth = request.headers.get("authorization", "")
        made = answer(auth)
        reply = sse(made) if stream else respond(200, made)
        await reply(request, writer)

    return behaviour


@pytest.mark.parametrize(("subject", "case"), CASES, ids=[f"{s}-{c}" for s, c in CASES])
def test_a_token_echoed_into_a_decoders_error_is_not_shown(
    raw_server: RawServer, subject: Subject, case: str
) -> None:
    echo = ECHOES[case]
    for path, answer in echo.routes.items():
        raw_server.route(path, _echoing(answer, echo.stream))
    obj = subject.make(endpoint_url=raw_server.url + echo.endpoint, token=PLANTED, max_retries=0)
    try:
        if echo.stream:
            with pytest.raises(HfragError) as info:
                STREAMS[subject.name](obj, INPUTS["generate"])
        else:
            with pytest.raises(HfragError) as info:
                subject.call(obj, INPUTS[subject.kind])
        answered = [r for r in raw_server.stats.requests if r.path in echo.routes]
        # The server did get the token and echo it (so the test can fail).
        assert any(PLANTED in r.headers.get("authorization", "") for r in answered)
        error = info.value
        shown = "".join(traceback.format_exception(error)) + repr(error) + repr(error.args)
        shown += repr(getattr(error, "body", None))
        assert PLANTED not in shown
    finally:
        close(obj)
