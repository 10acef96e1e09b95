"""The endpoint's tokenizer (TEI /tokenize): byte offsets become character offsets, and answers
that break the shape are typed errors naming the input."""

from __future__ import annotations

import pytest

from hfrag.errors import ConfigurationError, MalformedResponseError
from hfrag.server.testing import CannedResponse, ServerHandle
from hfrag.tasks import Token, TokenizerClient


def test_byte_offsets_become_character_offsets(server: ServerHandle) -> None:
    tokens = TokenizerClient(endpoint_url=server.url).tokenize(["café 🎉 naïve"])[0]
    assert tokens == [
        Token(tokens[0].id, "café", False, 0, 4),
        Token(tokens[1].id, "🎉", False, 5, 6),
        Token(tokens[2].id, "naïve", False, 7, 12),
    ]
    assert server.counters.bodies[-1] == {"inputs": ["café 🎉 naïve"], "add_special_tokens": False}


def test_counts_include_special_tokens(server: ServerHandle) -> None:
    special = [[{"id": 101, "text": "[CLS]", "special": True, "start": None, "stop": None}] * 3]
    server.script("/tokenize", CannedResponse(200, special))
    assert TokenizerClient(endpoint_url=server.url).count(["x"]) == [3]


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ([[{"id": 1, "text": "é", "special": False, "start": 0, "stop": 1}]], "character boundary"),
        ([[{"id": 1, "text": "x", "special": False, "start": 0, "stop": 9}]], "outside the text"),
        ([[{"id": 1, "text": "x", "special": False, "start": None, "stop": None}]], "no offsets"),
        ([[{"text": "x", "start": 0, "stop": 1}]], "integer id"),
        ([[], []], "2 token lists for 1 inputs"),
        # out of text order, and overlapping: chunk boundaries would come out of order
        (
            [
                [
                    {"id": 2, "text": "b", "start": 2, "stop": 3},
                    {"id": 1, "text": "a", "start": 0, "stop": 1},
                ]
            ],
            "must follow the text in order",
        ),
        (
            [
                [
                    {"id": 1, "text": "a b", "start": 0, "stop": 3},
                    {"id": 2, "text": "b", "start": 2, "stop": 3},
                ]
            ],
            "must follow the text in order",
        ),
        ({"error": "x"}, "token lists for 1 inputs"),
    ],
)
def test_malformed_answers_name_the_input(server: ServerHandle, answer: object, why: str) -> None:
    text = "a b" if "in order" in why else "é"
    server.script("/tokenize", CannedResponse(200, answer))
    with pytest.raises(MalformedResponseError, match=why) as info:
        TokenizerClient(endpoint_url=server.url, max_retries=0).tokenize([text])
    assert info.value.positions == (0,)


def test_a_model_id_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="endpoint_url"):
        TokenizerClient(model="sentence-transformers/all-MiniLM-L6-v2")


def test_the_byte_pieces_of_one_character_may_share_its_span(server: ServerHandle) -> None:
    pieces = [[{"id": i, "text": "🎉", "start": 0, "stop": 4} for i in (1, 2)]]
    server.script("/tokenize", CannedResponse(200, pieces))
    tokens = TokenizerClient(endpoint_url=server.url).tokenize(["🎉"])[0]
    assert [(t.start, t.stop) for t in tokens] == [(0, 1), (0, 1)]
