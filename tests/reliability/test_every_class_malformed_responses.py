"""A catalogue of malformed answers, each with the typed error it must give, for every public class.

Generic answers (an HTML page, truncated JSON, the wrong JSON type, a redirect, a dropped
connection...) go to every class; answers shaped almost like the right one (wrong counts, ragged
vectors, NaN, wrong field types) go to the classes of their kind. Never a KeyError, IndexError,
AttributeError, pydantic error or a silently wrong result.
"""

from __future__ import annotations

from typing import Any

import pytest

from hfrag.errors import (
    BackendError,
    InferenceConnectionError,
    InferenceError,
    MalformedResponseError,
    RedirectError,
)
from hfrag.server.state import CannedResponse
from hfrag.server.testing import ServerHandle
from tests.reliability.classes import INPUTS, SUBJECTS, Subject, close

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


def test_the_catalogue_is_large_enough() -> None:
    assert all(len(GENERIC) + len(cases) >= 20 for cases in BY_KIND.values())
