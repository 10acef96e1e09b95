"""Inputs longer than the endpoint's max_input_length: a warning, an error, or nothing, as set;
never a silent cut. Counted by the endpoint's own tokenizer (``/tokenize``)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from hfrag.errors import InputError
from hfrag.server.testing import CannedResponse, ServerHandle
from hfrag.tasks import EmbeddingOptions, EmbeddingsClient
from hfrag.tasks.lengths import LongInputWarning
from hfrag.tasks.sparse import SparseEmbeddingsClient, SparseOptions

LONG = " ".join(f"w{i}" for i in range(600))  # 600 tokens for the hashing models' 512
TEXTS = ["short one", LONG, "another", LONG + " more", "end"]


def dense(url: str, **options: Any) -> EmbeddingsClient:
    return EmbeddingsClient(endpoint_url=url, options=EmbeddingOptions(**options))


def sparse(url: str, **options: Any) -> SparseEmbeddingsClient:
    return SparseEmbeddingsClient(endpoint_url=url, options=SparseOptions(**options))


@pytest.mark.parametrize("make", [dense, sparse])
def test_a_warning_names_how_many_and_which_once_per_call(server: ServerHandle, make: Any) -> None:
    c = make(server.url)
    for _ in range(2):  # the same call twice: said twice
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            c.embed(TEXTS)
        said = [w for w in caught if issubclass(w.category, LongInputWarning)]
        assert len(said) == 1
        message = str(said[0].message)
        assert message.startswith(
            "2 of 5 inputs are longer than the endpoint's max_input_length of 512 tokens, at "
            "positions 1 (600 tokens), 3 (601 tokens): the server truncates them"
        )


@pytest.mark.parametrize("make", [dense, sparse])
def test_error_refuses_before_any_embedding_request(server: ServerHandle, make: Any) -> None:
    with pytest.raises(InputError) as info:
        make(server.url, long_inputs="error").embed(TEXTS)
    assert info.value.positions == (1, 3)
    assert server.counters.total("/tokenize") == 1
    assert server.counters.total("/") + server.counters.total("/embed_sparse") == 0


def test_truncate_false_is_an_error_too(server: ServerHandle) -> None:
    with pytest.raises(InputError, match="refuses them"):
        dense(server.url, truncate=False).embed(TEXTS)


def test_ignore_counts_nothing(server: ServerHandle) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", LongInputWarning)
        dense(server.url, long_inputs="ignore").embed(TEXTS)
    assert server.counters.total("/tokenize") == 0


def test_short_texts_are_not_asked_about(server: ServerHandle) -> None:
    dense(server.url).embed(["a short text", "another"] * 20)
    assert server.counters.total("/tokenize") == 0


def test_only_the_texts_that_could_be_long_are_counted(server: ServerHandle) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dense(server.url).embed(TEXTS)
    tokenize = [
        b for b in server.counters.bodies if isinstance(b, dict) and "add_special_tokens" in b
    ]
    assert tokenize == [{"inputs": [LONG, LONG + " more"], "add_special_tokens": True}]


def test_an_endpoint_without_tokenize_is_not_asked_again(server: ServerHandle) -> None:
    server.script("/tokenize", CannedResponse(404, b""))
    c = dense(server.url)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LongInputWarning)
        c.embed(TEXTS)
        c.embed(TEXTS)
    assert server.counters.total("/tokenize") == 1
    assert server.counters.total("/") == 2  # the endpoint URL as given


def test_the_instruction_counts_toward_the_length(server: ServerHandle) -> None:
    almost = " ".join(f"w{i}" for i in range(510))  # fits alone, not with the instruction
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        dense(server.url, document_instruction="passage of text: ").embed([almost])
    assert [str(w.message)[:12] for w in caught] == ["1 of 1 input"]
