"""How each server says "too many inputs": mapped to BatchTooLargeError (split), with its limit."""

from __future__ import annotations

import json

import pytest

from hfrag.errors import BatchTooLargeError, InvalidRequestError, says_batch_too_large
from hfrag.transport.responses import error_from_response

CASES = [
    # (server, status, body, limit)
    (
        "TEI /embed",
        413,
        {"error": "batch size 40 > maximum allowed batch size 32", "error_type": "Validation"},
        32,
    ),
    (
        "TEI /v1/embeddings",
        413,
        {
            "message": "batch size 40 > maximum allowed batch size 32",
            "code": 413,
            "type": "Validation",
        },
        32,
    ),
    ("TEI behind a proxy", 422, {"error": "batch size 40 > maximum allowed batch size 8"}, 8),
    (
        "OpenAI",
        400,
        {
            "error": {
                "message": "Too many inputs. The max number of inputs is 16.  We recommend...",
                "type": "invalid_request_error",
            }
        },
        16,
    ),
    (
        "Azure OpenAI",
        400,
        {"error": {"message": "Too many inputs for model None. The max number of inputs is 1."}},
        1,
    ),
    (
        "DashScope",
        400,
        {
            "error": {
                "message": "<400> InternalError.Algo.InvalidParameter: Value "
                "error, batch size is invalid, it should not be larger than "
                "10.: input.contents"
            }
        },
        10,
    ),
    (
        "Infinity (FastAPI)",
        422,
        {
            "detail": [
                {
                    "type": "too_long",
                    "loc": ["body", "input"],
                    "msg": "List should have at most 2048 items after validation, not 3000",
                }
            ]
        },
        2048,
    ),
    ("a provider without a number", 400, {"error": {"message": "too many inputs"}}, None),
]


@pytest.mark.parametrize(("server", "status", "body", "limit"), CASES, ids=[c[0] for c in CASES])
def test_too_many_inputs_is_a_batch_error_with_its_limit(server, status, body, limit):
    error = error_from_response(status, {}, json.dumps(body).encode(), "http://127.0.0.1:1/x")
    assert type(error) is BatchTooLargeError
    assert error.max_batch_size == limit


@pytest.mark.parametrize(
    ("status", "message"),
    [
        # vLLM and llama.cpp: one input too long; splitting the batch cannot help
        (
            400,
            "This model's maximum context length is 512 tokens. However, you requested 600 "
            "tokens in the input for embedding generation. Please reduce the length of the input.",
        ),
        (413, "Input validation error: `inputs` must have less than 512 tokens. Given: 600"),
        (400, "input is too large to process. increase the physical batch size"),
    ],
)
def test_one_input_too_long_is_not_a_batch_error(status, message):
    assert not says_batch_too_large(message)
    body = json.dumps({"error": {"message": message}}).encode()
    error = error_from_response(status, {}, body, "http://127.0.0.1:1/x")
    assert type(error) is InvalidRequestError
