"""Error bodies of every shape, and the one mapping from HTTP status to the error tree."""

from __future__ import annotations

import json
import pickle
import random
from typing import Any

import pytest

from hfrag.errors import (
    AuthenticationError,
    BackendError,
    BatchTooLargeError,
    InferenceError,
    InferenceTimeoutError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    UnavailableError,
)
from hfrag.server.testing import CannedResponse
from hfrag.transport import Request
from hfrag.transport.responses import (
    batch_limit_from_message,
    error_class,
    error_from_response,
    parse_error_body,
    stream_error,
)
from tests.transport.conftest import FAST_RETRY

TEI_BATCH = "batch size 64 > maximum allowed batch size 32"
AXUM = (
    "Failed to deserialize the JSON body into the target type: inputs: invalid type: "
    "integer `3`, expected a string at line 1 column 12"
)
HTML_502 = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>502 Bad &amp; Gateway</h1><p>nginx</p></body></html>"
)


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


# (body bytes, content-type, expected message, expected error_type)
BODY_SHAPES = {
    "tei-validation": (
        _json(
            {
                "error": "Input validation error: `inputs` cannot be empty",
                "error_type": "Validation",
            }
        ),
        "application/json",
        "Input validation error: `inputs` cannot be empty",
        "Validation",
    ),
    "tei-tokenizer": (
        _json({"error": "tokenizer failed", "error_type": "Tokenizer"}),
        "application/json",
        "tokenizer failed",
        "Tokenizer",
    ),
    "tei-overloaded": (
        _json({"error": "Model is overloaded", "error_type": "Overloaded"}),
        "application/json",
        "Model is overloaded",
        "Overloaded",
    ),
    "tgi-lowercase": (
        _json(
            {
                "error": "Input validation error: `temperature` must be strictly positive",
                "error_type": "validation",
            }
        ),
        "application/json",
        "Input validation error: `temperature` must be strictly positive",
        "validation",
    ),
    "openai": (
        _json(
            {
                "error": {
                    "message": "The model `x` does not exist",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "model_not_found",
                }
            }
        ),
        "application/json",
        "The model `x` does not exist",
        "invalid_request_error",
    ),
    "openai-code-only": (
        _json({"error": {"message": "slow down", "code": 429}}),
        "application/json",
        "slow down",
        "429",
    ),
    "openai-no-message": (
        _json({"error": {"code": "boom"}}),
        "application/json",
        '{"code": "boom"}',
        "boom",
    ),
    "hf-loading": (
        _json({"error": "Model BAAI/bge is currently loading", "estimated_time": 20.0}),
        "application/json",
        "Model BAAI/bge is currently loading",
        None,
    ),
    "error-list": (
        _json({"error": ["first problem", "second problem"]}),
        "application/json",
        "first problem; second problem",
        None,
    ),
    "fastapi-detail-str": (_json({"detail": "Not Found"}), "application/json", "Not Found", None),
    "fastapi-detail-list": (
        _json({"detail": [{"loc": ["body", "inputs"], "msg": "field required"}]}),
        "application/json",
        '[{"loc": ["body", "inputs"], "msg": "field required"}]',
        None,
    ),
    "message-key": (
        _json({"message": "Internal error"}),
        "application/json",
        "Internal error",
        None,
    ),
    "json-string": (_json("just a string"), "application/json", "just a string", None),
    "json-list": (_json([1, 2]), "application/json", "[1, 2]", None),
    "json-null-error": (
        _json({"error": None, "x": 1}),
        "application/json",
        '{"error": null, "x": 1}',
        None,
    ),
    "axum-plain-text": (AXUM.encode(), "text/plain; charset=utf-8", AXUM, None),
    "proxy-plain-text": (
        b"upstream connect error or disconnect/reset before headers\n",
        "text/plain",
        "upstream connect error or disconnect/reset before headers",
        None,
    ),
    "html-page": (HTML_502, "text/html", "502 Bad Gateway", None),
    "html-without-content-type": (HTML_502, None, "502 Bad Gateway", None),
    "html-no-title": (
        b"<html><body><h1>Service &lt;Unavailable&gt;</h1></body></html>",
        "text/html",
        "Service <Unavailable>",
        None,
    ),
    "empty": (b"", None, "", None),
    "whitespace": (b"  \r\n ", "application/json", "", None),
    "json-content-type-but-text": (b"oops {", "application/json", "oops {", None),
}


@pytest.mark.parametrize(
    ("content", "content_type", "message", "error_type"),
    list(BODY_SHAPES.values()),
    ids=list(BODY_SHAPES),
)
def test_parse_error_body_shapes(
    content: bytes, content_type: str | None, message: str, error_type: str | None
) -> None:
    got_message, got_type, _body = parse_error_body(content, content_type)
    assert got_message == message
    assert got_type == error_type


def test_parse_error_body_keeps_the_decoded_body() -> None:
    body = {"error": "Model x is currently loading", "estimated_time": 20.0}
    assert parse_error_body(_json(body), "application/json")[2] == body
    assert parse_error_body(b"plain", "text/plain")[2] == "plain"


def test_invalid_utf8_body() -> None:
    message, error_type, _ = parse_error_body(b"bad \xff\xfe bytes \xc3", "text/plain")
    assert message.startswith("bad ")
    assert "bytes" in message
    assert error_type is None


def test_huge_body_is_clipped() -> None:
    huge = ("x" * 2_000_000).encode()
    message, _, _ = parse_error_body(huge, "text/plain")
    assert len(message) <= 500
    assert message.endswith("...")
    huge_json = _json({"error": "y" * 100_000, "error_type": "Validation"})
    message, error_type, _ = parse_error_body(huge_json, "application/json")
    assert len(message) <= 500
    assert error_type == "Validation"


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_never_break_the_parser(seed: int) -> None:
    rng = random.Random(seed)
    fragments = [
        b"{",
        b"}",
        b"[",
        b"]",
        b'"error"',
        b":",
        b",",
        b"null",
        b"<",
        b">",
        b"\xff",
        b'"message"',
        b"{}",
        b'"detail"',
        b"1e999",
        b"NaN",
        b" ",
    ]
    for _ in range(300):
        content = b"".join(rng.choice(fragments) for _ in range(rng.randrange(0, 12)))
        for status in (400, 413, 422, 429, 500, 503):
            error = error_from_response(status, {}, content, "http://127.0.0.1:1/x")
            assert isinstance(error, InferenceError)
            assert error.status == status
            assert error.message  # never empty: the reason phrase stands in


# --- status mapping ---


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (402, PaymentRequiredError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (405, NotFoundError),  # the URL does not serve POST: a wrong route
        (408, InferenceTimeoutError),
        (409, InvalidRequestError),
        (410, NotFoundError),
        (413, BatchTooLargeError),
        (422, InvalidRequestError),
        (424, BackendError),
        (429, RateLimitError),
        (500, BackendError),
        (501, BackendError),
        (502, BackendError),
        (503, UnavailableError),
        (504, InferenceTimeoutError),
        (599, BackendError),
    ],
)
def test_error_class_by_status(status: int, cls: type[InferenceError]) -> None:
    assert error_class(status, "something failed", None) is cls


@pytest.mark.parametrize("status", [400, 413, 422])
def test_batch_message_means_batch_too_large(status: int) -> None:
    error = error_from_response(
        status, {}, _json({"error": TEI_BATCH, "error_type": "Validation"}), "http://h/embed"
    )
    assert type(error) is BatchTooLargeError
    assert error.max_batch_size == 32
    assert not error.retryable


@pytest.mark.parametrize(
    "message",
    [
        "Input validation error: `inputs` must have less than 512 tokens. Given: 1024",
        "input is too long",
    ],
)
def test_413_about_one_long_input_is_not_a_batch_problem(message: str) -> None:
    error = error_from_response(413, {}, _json({"error": message}), "http://h/embed")
    assert type(error) is InvalidRequestError


def test_plain_413_is_batch_too_large_without_a_limit() -> None:
    error = error_from_response(413, {}, b"Payload Too Large", "http://h/embed")
    assert type(error) is BatchTooLargeError
    assert error.max_batch_size is None


@pytest.mark.parametrize(
    ("message", "limit"),
    [
        (TEI_BATCH, 32),
        ("Input validation error: batch size 300 > maximum allowed batch size 256", 256),
        ("BATCH SIZE 9 > MAXIMUM ALLOWED BATCH SIZE 8", 8),
        ("batch too large", None),
        ("", None),
    ],
)
def test_batch_limit_from_message(message: str, limit: int | None) -> None:
    assert batch_limit_from_message(message) == limit


def test_empty_body_message_is_the_reason_phrase() -> None:
    assert error_from_response(502, {}, b"", "http://h/").message == "Bad Gateway"
    assert error_from_response(599, {}, b"", "http://h/").message == "error"


def test_error_from_response_carries_everything() -> None:
    error = error_from_response(
        503,
        {"content-type": "application/json"},
        _json({"error": "Model m is currently loading", "estimated_time": 12.5}),
        "http://user:pw@127.0.0.1:1/embed?api_key=s3cr3t",
    )
    assert type(error) is UnavailableError
    assert error.status == 503
    assert error.message == "Model m is currently loading"
    assert error.retry_after == 12.5
    assert error.url == "http://127.0.0.1:1/embed?api_key=***"
    assert error.body == {"error": "Model m is currently loading", "estimated_time": 12.5}
    text = str(error)
    assert "HTTP 503" in text
    assert "Model m is currently loading" in text
    assert "s3cr3t" not in text
    assert "pw@" not in text
    assert UnavailableError.hint in text


# --- error events inside a 200 stream ---


@pytest.mark.parametrize(
    ("payload", "cls", "message", "error_type"),
    [
        (
            {"error": "CUDA out of memory", "error_type": "generation"},
            BackendError,
            "CUDA out of memory",
            "generation",
        ),
        (
            {"error": "Model is overloaded", "error_type": "overloaded"},
            RateLimitError,
            "Model is overloaded",
            "overloaded",
        ),
        (
            {"error": "Model is overloaded", "error_type": "Overloaded"},
            RateLimitError,
            "Model is overloaded",
            "Overloaded",
        ),
        ({"error": "bad", "error_type": "validation"}, InvalidRequestError, "bad", "validation"),
        ({"error": "bad", "error_type": "Tokenizer"}, InvalidRequestError, "bad", "Tokenizer"),
        (
            {"error": "gone", "error_type": "incomplete_generation"},
            BackendError,
            "gone",
            "incomplete_generation",
        ),
        ({"error": {"message": "upstream failed"}}, BackendError, "upstream failed", None),
        (
            {"error": {"message": "slow", "type": "rate_limit_exceeded"}},
            RateLimitError,
            "slow",
            "rate_limit_exceeded",
        ),
        ({"error": "sick", "error_type": "Unhealthy"}, UnavailableError, "sick", "Unhealthy"),
    ],
)
def test_stream_error(
    payload: dict[str, object], cls: type[InferenceError], message: str, error_type: str | None
) -> None:
    error = stream_error(payload, "http://u:pw@h/generate_stream?k=v")
    assert type(error) is cls
    assert error.status == 200
    assert error.message == message
    assert error.error_type == error_type
    assert error.url == "http://h/generate_stream?k=***"


# --- the error objects themselves ---


def test_error_with_positions_and_pickle() -> None:
    error = error_from_response(
        422, {}, _json({"error": TEI_BATCH, "error_type": "Validation"}), "http://h/embed"
    )
    clone = error.with_positions([0, 1, 2, 5])
    assert type(clone) is BatchTooLargeError
    assert "inputs not processed: 0-2, 5" in str(clone)
    assert error.positions is None
    back = pickle.loads(pickle.dumps(clone))
    assert type(back) is BatchTooLargeError
    assert (back.status, back.message, back.positions, back.max_batch_size) == (
        422,
        TEI_BATCH,
        (0, 1, 2, 5),
        32,
    )
    assert str(back) == str(clone)


def test_backend_error_pickles_with_its_retryability() -> None:
    for status, retryable in ((500, True), (424, False)):
        back = pickle.loads(pickle.dumps(BackendError("x", status=status)))
        assert back.retryable is retryable


# --- over HTTP, through both drivers ---

PATH = "/embed"
MAX_RETRIES = FAST_RETRY.max_retries
LOADING = {"error": "Model m is currently loading", "estimated_time": 0.01}
OVERLOADED = {"error": "Model is overloaded", "error_type": "Overloaded"}
INPUT_EMPTY = "Input validation error: `inputs` cannot be empty"
NO_CREDITS = "You have exceeded your monthly included credits for Inference Providers."
FORBIDDEN = "This authentication method does not have sufficient permissions"
GONE = "https://api-inference.huggingface.co is no longer supported, use the router"
TOP_K = "Input validation error: `top_k` must be strictly positive"

# id: (status, body, headers, class, message, error_type, retried)
STATUS_TABLE: dict[str, tuple[Any, ...]] = {
    "400": (
        400,
        {"error": INPUT_EMPTY, "error_type": "Validation"},
        {},
        InvalidRequestError,
        INPUT_EMPTY,
        "Validation",
        False,
    ),
    "401": (401, b"", {}, AuthenticationError, "Unauthorized", None, False),
    "402": (402, {"error": NO_CREDITS}, {}, PaymentRequiredError, NO_CREDITS, None, False),
    "403": (
        403,
        {"error": {"message": FORBIDDEN, "type": "forbidden"}},
        {},
        AuthenticationError,
        FORBIDDEN,
        "forbidden",
        False,
    ),
    "404": (
        404,
        {"error": "Model org/nope does not exist"},
        {},
        NotFoundError,
        "Model org/nope does not exist",
        None,
        False,
    ),
    "408": (408, "stream timeout", {}, InferenceTimeoutError, "stream timeout", None, True),
    "410": (410, {"error": GONE}, {}, NotFoundError, GONE, None, False),
    "413": (
        413,
        {"error": TEI_BATCH, "error_type": "Validation"},
        {},
        BatchTooLargeError,
        TEI_BATCH,
        "Validation",
        False,
    ),
    "422": (
        422,
        {"error": TOP_K, "error_type": "validation"},
        {},
        InvalidRequestError,
        TOP_K,
        "validation",
        False,
    ),
    "422-batch": (
        422,
        {"error": TEI_BATCH, "error_type": "Validation"},
        {},
        BatchTooLargeError,
        TEI_BATCH,
        "Validation",
        False,
    ),
    "422-axum": (422, AXUM, {}, InvalidRequestError, AXUM, None, False),
    "424": (
        424,
        {"error": "Model is not a re-ranker model", "error_type": "Backend"},
        {},
        BackendError,
        "Model is not a re-ranker model",
        "Backend",
        False,
    ),
    "429": (
        429,
        OVERLOADED,
        {"Retry-After": "0"},
        RateLimitError,
        "Model is overloaded",
        "Overloaded",
        True,
    ),
    "500": (
        500,
        {"error": "Internal Server Error"},
        {},
        BackendError,
        "Internal Server Error",
        None,
        True,
    ),
    "502": (
        502,
        HTML_502,
        {"Content-Type": "text/html"},
        BackendError,
        "502 Bad Gateway",
        None,
        True,
    ),
    "503": (503, LOADING, {}, UnavailableError, "Model m is currently loading", None, True),
    "504": (
        504,
        "upstream request timeout",
        {},
        InferenceTimeoutError,
        "upstream request timeout",
        None,
        True,
    ),
}


@pytest.mark.parametrize(
    ("status", "body", "headers", "cls", "message", "error_type", "retried"),
    list(STATUS_TABLE.values()),
    ids=list(STATUS_TABLE),
)
def test_status_over_http(
    server: Any,
    drive: Any,
    status: int,
    body: Any,
    headers: dict[str, str],
    cls: type[InferenceError],
    message: str,
    error_type: str | None,
    retried: bool,
) -> None:
    answer = CannedResponse(status, body=body, headers=headers)
    server.script(PATH, *[answer] * (MAX_RETRIES + 1))
    server.script(PATH, CannedResponse(200, {"unexpected": "success"}))
    url = server.url + PATH
    with pytest.raises(InferenceError) as info:
        drive().request(Request(url, json={"inputs": ["a"]}))
    error = info.value
    assert type(error) is cls
    assert error.status == status
    assert error.message == message
    assert error.error_type == error_type
    assert error.url == url
    assert f"HTTP {status}" in str(error)
    sent = server.counters.total(PATH)
    assert sent == (MAX_RETRIES + 1 if retried else 1)
    assert server.counters.total(PATH, status) == sent
    if cls is BatchTooLargeError:
        assert error.max_batch_size == 32  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("content", "content_type", "message", "error_type"),
    list(BODY_SHAPES.values()),
    ids=list(BODY_SHAPES),
)
def test_error_body_shapes_over_http(
    server: Any,
    drive: Any,
    content: bytes,
    content_type: str | None,
    message: str,
    error_type: str | None,
) -> None:
    server.script(PATH, CannedResponse(400, body=content, content_type=content_type))
    with pytest.raises(InvalidRequestError) as info:
        drive().request(Request(server.url + PATH, json={"inputs": "a"}))
    assert info.value.message == (message or "Bad Request")
    assert info.value.error_type == error_type


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\x00 broken \xc3(", b"[" * 100_000, ("z" * 3_000_000).encode()],
    ids=["invalid-utf8", "deeply-nested", "3MB"],
)
def test_odd_error_bodies_over_http(server: Any, drive: Any, content: bytes) -> None:
    server.script(PATH, CannedResponse(422, body=content, content_type="application/json"))
    with pytest.raises(InvalidRequestError) as info:
        drive().request(Request(server.url + PATH, json={"inputs": "a"}))
    assert 0 < len(info.value.message) <= 500
    assert len(str(info.value)) < 1000


@pytest.mark.parametrize(
    "content",
    [b"<html>not json</html>", b'{"a": [1, 2', b"[" * 100_000],
    ids=["html", "cut", "deep"],
)
def test_malformed_success_body(server: Any, drive: Any, content: bytes) -> None:
    server.script(PATH, CannedResponse(200, body=content, content_type="application/json"))
    with pytest.raises(MalformedResponseError, match="not JSON") as info:
        drive().request(Request(server.url + PATH, json={"inputs": "a"}))
    assert info.value.status == 200
    assert server.counters.total(PATH) == 1  # a malformed answer is not retried
