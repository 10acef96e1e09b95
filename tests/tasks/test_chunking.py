"""Chunks cut by the endpoint's own tokenizer: every chunk fits as the server counts it, with the
overlap asked for, exact character offsets, across TEI's character limit and multi-byte text."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from hfrag.errors import ConfigurationError
from hfrag.server import HashingBackend, ModelSpec, ServerConfig
from hfrag.tasks.chunking import TokenChunker, cut
from hfrag.tasks.tokens import Token, TokenizerClient
from tests.hybrid import MIXED, minilm_server, server_counts

__all__ = ["minilm_server"]


def chunks_of(url: str, texts: list[str], **kw: Any) -> list[Any]:
    client = TokenizerClient(endpoint_url=url)
    chunker = TokenChunker(client, **kw)
    return client.run(chunker.chunks(texts))


def test_every_chunk_fits_as_the_server_counts_it(minilm_server: Any) -> None:
    long = MIXED + " " + "A sentence about retrieval and embeddings. " * 200
    found = chunks_of(minilm_server.url, [long, "short text"])
    chunks = [c for row in found for c in row]
    counts = server_counts(minilm_server, [c.text for c in chunks])
    assert max(counts) <= 256
    assert counts[:-2] == [c.tokens for c in chunks][:-2]
    assert min(counts[: len(found[0]) - 1]) > 200  # full chunks, not timid ones
    assert [c.text for c in found[1]] == ["short text"]
    for c in found[0]:
        assert long[c.start : c.stop] == c.text
    # Nothing is lost: every non-space character is in some chunk.
    covered = set()
    for c in found[0]:
        covered.update(range(c.start, c.stop))
    assert all(i in covered for i, ch in enumerate(long) if not ch.isspace())


def test_chunk_size_and_overlap_are_in_tokens(minilm_server: Any) -> None:
    found = chunks_of(minilm_server.url, [MIXED], chunk_size=64, chunk_overlap=16)[0]
    assert max(server_counts(minilm_server, [c.text for c in found])) <= 64
    tokens = TokenizerClient(endpoint_url=minilm_server.url).tokenize([MIXED])[0]
    for left, right in itertools.pairwise(found):
        shared = [t for t in tokens if right.start <= t.start < left.stop]  # type: ignore[operator]
        assert 10 <= len(shared) <= 16, len(shared)  # cut back to a word start: at most 16


def test_a_word_longer_than_a_chunk_is_cut_inside(minilm_server: Any) -> None:
    word = "antidisestablishmentarianism" * 40
    found = chunks_of(minilm_server.url, [word], chunk_size=32)[0]
    assert "".join(c.text for c in found) == word
    assert max(server_counts(minilm_server, [c.text for c in found])) <= 32


def test_texts_past_teis_character_limit_are_tokenized_in_windows(make_server: Any) -> None:
    backend = HashingBackend(dim=8)
    spec = ModelSpec("hfrag/hash-embed", "embed", backend, max_input_length=8)
    srv = make_server(ServerConfig(models=[spec]))
    text = " ".join(f"w{i}" for i in range(1500))  # 8,889 characters; TEI takes 2,000 at once
    found = chunks_of(srv.url, [text])[0]
    assert [c.text.split() for c in found] == [text.split()[i : i + 8] for i in range(0, 1500, 8)]
    assert all(len(body["inputs"][0]) < 2000 for body in srv.counters.bodies if "inputs" in body)


def test_a_chunk_size_over_the_limit_is_refused(minilm_server: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_input_length of 256"):
        chunks_of(minilm_server.url, ["text"], chunk_size=512)
    with pytest.raises(ConfigurationError, match="chunk_overlap"):
        TokenChunker(TokenizerClient(endpoint_url=minilm_server.url), 8, 8)


def test_cut_prefers_word_starts() -> None:
    text = "alpha beta gamma"
    tokens = [
        Token(0, "al", False, 0, 2),
        Token(1, "pha", False, 2, 5),
        Token(2, "beta", False, 6, 10),
        Token(3, "gam", False, 11, 14),
        Token(4, "ma", False, 14, 16),
    ]
    assert cut(text, tokens, 3, 0) == [(0, 3), (3, 5)]  # "alpha beta", "gamma"
    assert cut(text, tokens, 2, 0) == [(0, 2), (2, 3), (3, 5)]  # never "beta gam"
    assert cut(text, tokens, 1, 0) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]


def _tok(i: int, text: str, start: int | None, stop: int | None, special: bool = False) -> dict:
    return {"id": i, "text": text, "special": special, "start": start, "stop": stop}


def test_a_special_token_without_offsets_inside_a_text_covers_none_of_it(server: Any) -> None:
    from hfrag.server.testing import CannedResponse

    cls, sep = _tok(101, "[CLS]", None, None, True), _tok(102, "[SEP]", None, None, True)
    server.script(
        "/tokenize",
        CannedResponse(200, [[cls, _tok(1, "a", 0, 1), sep]]),  # the probe, specials included
        CannedResponse(200, [[_tok(1, "a", 0, 1)]]),
        CannedResponse(200, [[_tok(1, "alpha", 0, 5), _tok(9, "[X]", None, None, True),
                              _tok(2, "beta", 6, 10)]]),
    )  # fmt: skip
    found = chunks_of(server.url, ["alpha beta"], chunk_size=8)[0]
    assert [c.text for c in found] == ["alpha beta"]


def test_counts_that_never_fit_the_tokens_are_a_typed_error(server: Any) -> None:
    from hfrag.errors import MalformedResponseError
    from hfrag.server.testing import CannedResponse

    one = [[_tok(1, "a", 0, 1)]]
    words = [[_tok(i, w, 6 * i, 6 * i + 5) for i, w in enumerate(["alpha", "gamma", "delta"])]]
    # Every count the endpoint gives is over the chunk size, whatever the chunk it is asked.
    over = [[_tok(1, "a", 0, 1), *[_tok(7, "x", None, None, True)] * 50]]
    server.script(
        "/tokenize",
        CannedResponse(200, one),
        CannedResponse(200, one),
        CannedResponse(200, words),
        *[CannedResponse(200, over)] * 40,
    )
    with pytest.raises(MalformedResponseError, match="disagree"):
        chunks_of(server.url, ["alpha gamma delta"], chunk_size=8)


def test_a_chunk_the_endpoint_finds_no_text_in_is_a_typed_error(server: Any) -> None:
    from hfrag.errors import MalformedResponseError
    from hfrag.server.testing import CannedResponse

    one = [[_tok(1, "a", 0, 1)]]
    words = [[_tok(i, w, 6 * i, 6 * i + 5) for i, w in enumerate(["alpha", "gamma", "delta"])]]
    specials_only = [[_tok(7, "x", None, None, True)] * 50]
    server.script(
        "/tokenize",
        CannedResponse(200, one),
        CannedResponse(200, one),
        CannedResponse(200, words),
        *[CannedResponse(200, specials_only)] * 40,
    )
    with pytest.raises(MalformedResponseError, match="no token of its text"):
        chunks_of(server.url, ["alpha gamma delta"], chunk_size=8)
