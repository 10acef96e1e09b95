"""The server's JSON answers: compact, and never NaN or infinity (which JSON does not have)."""

from __future__ import annotations

import json

import pytest

from hfrag.server.inference import json_response


@pytest.mark.parametrize(
    "data",
    [
        [[0.1, -2.5e-08, 3.0], [1e300, 0.0, -0.0]],
        {"generated_text": "é \ud7ff \u2028", "details": None, "n": 2**53},
        {"big": 2**70, "ok": True},  # past orjson's 64-bit integers: json writes it
    ],
)
def test_answers_are_the_json_of_the_data(data):
    response = json_response(data)
    assert response.content_type == "application/json"
    assert json.loads(response.body) == data
    assert b", " not in response.body


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_are_refused_not_written_as_null(bad):
    with pytest.raises(ValueError, match="not JSON compliant"):
        json_response({"data": [{"embedding": [0.5, bad]}], "usage": None})
