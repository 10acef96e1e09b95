"""The LangChain adapter against the local server: prompts, fields, credentials, event loops."""

from __future__ import annotations

import asyncio
import json
import logging
import warnings
from typing import Any

import numpy as np
import pytest
from langchain_core.load import dumpd, dumps

from hfrag.errors import AuthenticationError, ConfigurationError
from hfrag.langchain import HuggingFaceInferenceEmbeddings
from hfrag.server.testing import CannedResponse, ServerHandle
from hfrag.tasks import EmbeddingOptions, EmbeddingsClient
from tests.adapters import PLANTED, expected, target_kwargs

TEXTS = ["The Eiffel tower is in Paris.", "Bananas are yellow.", "Rust has a borrow checker."]
QUERY = "Where is the Eiffel tower?"
PROMPTS = {"query_prompt_name": "query", "document_prompt_name": "document"}
INSTRUCTIONS = {"query_instruction": "query: ", "document_instruction": "passage: "}


def embeddings(target: str, url: str, **kw: Any) -> HuggingFaceInferenceEmbeddings:
    return HuggingFaceInferenceEmbeddings(**target_kwargs(target, url), **kw)


def run(mode: str, emb: HuggingFaceInferenceEmbeddings) -> tuple[list[list[float]], list[float]]:
    """Documents and the query through the sync methods, or the async ones from a fresh loop."""
    if mode == "sync":
        return emb.embed_documents(TEXTS), emb.embed_query(QUERY)

    async def both() -> tuple[list[list[float]], list[float]]:
        return await emb.aembed_documents(TEXTS), await emb.aembed_query(QUERY)

    return asyncio.run(both())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("how", ["prompt_name", "instruction"])
def test_query_and_document_prompts_reach_the_server(
    srv: ServerHandle, target: str, mode: str, how: str
) -> None:
    settings = PROMPTS if how == "prompt_name" else INSTRUCTIONS
    docs, query = run(mode, embeddings(target, srv.url, **settings))

    assert isinstance(docs[0][0], float)
    assert isinstance(query[0], float)
    # Server-side prompts ("passage: ", "query: ") and client-side instructions give the same text.
    np.testing.assert_allclose(docs, expected(srv, [f"passage: {t}" for t in TEXTS]), atol=1e-6)
    np.testing.assert_allclose(query, expected(srv, [f"query: {QUERY}"])[0], atol=1e-6)
    bodies = [b for b in srv.counters.bodies if isinstance(b, dict) and "inputs" in b]
    if how == "prompt_name":
        assert [b.get("prompt_name") for b in bodies] == ["document", "query"]
        assert [b["inputs"] for b in bodies] == [TEXTS, [QUERY]]
    else:
        assert all("prompt_name" not in b for b in bodies)
        assert [b["inputs"] for b in bodies] == [
            [f"passage: {t}" for t in TEXTS],
            [f"query: {QUERY}"],
        ]


def test_without_prompts_query_and_document_vectors_are_equal(srv: ServerHandle) -> None:
    plain = embeddings("router", srv.url)
    assert plain.embed_query(QUERY) == plain.embed_documents([QUERY])[0]
    prompted = embeddings("router", srv.url, **PROMPTS)
    assert prompted.embed_query(QUERY) != prompted.embed_documents([QUERY])[0]


def test_options_are_sent_at_the_root_of_the_body(srv: ServerHandle) -> None:
    emb = embeddings(
        "endpoint",
        srv.url,
        normalize=False,
        truncate=False,
        truncation_direction="left",
        dimensions=64,
        prompt_name="document",
    )
    vectors = emb.embed_documents(TEXTS)
    assert len(vectors[0]) == 64
    assert srv.counters.bodies[-1] == {
        "inputs": TEXTS,
        "normalize": False,
        "truncate": False,
        "truncation_direction": "left",
        "dimensions": 64,
        "prompt_name": "document",
    }


def test_batch_size_and_empty_input(srv: ServerHandle) -> None:
    emb = embeddings("router", srv.url, batch_size=10, max_concurrency=1)
    texts = [f"text number {i}" for i in range(25)]
    np.testing.assert_allclose(emb.embed_documents(texts), expected(srv, texts), atol=1e-6)
    assert srv.counters.batch_sizes == [10, 10, 5]
    assert emb.embed_documents([]) == []


def test_reassigned_field_rebuilds_the_client(srv: ServerHandle) -> None:
    emb = embeddings("router", srv.url, batch_size=10, max_concurrency=1)
    emb.embed_documents(TEXTS * 4)
    emb.batch_size = 4
    emb.embed_documents(TEXTS * 4)
    assert srv.counters.batch_sizes == [10, 2, 4, 4, 4]


def test_defaults_are_the_task_clients() -> None:
    emb = HuggingFaceInferenceEmbeddings(model="org/model")
    client = emb.embeddings_client()
    assert isinstance(client, EmbeddingsClient)
    assert client.options == EmbeddingOptions()
    assert (emb.batch_size, emb.max_concurrency, emb.truncate) == ("auto", "auto", True)
    reference = EmbeddingsClient(model="org/model")
    assert client.config == reference.config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "model=.*endpoint_url=.*neither"),
        ({"model": "a/b", "endpoint_url": "http://127.0.0.1:1"}, "model=.*endpoint_url=.*not both"),
        ({"model": "  "}, "neither"),
        ({"endpoint_url": "127.0.0.1:8080"}, "absolute http"),
        ({"model": "a/b", "router_url": "ftp://x"}, "router_url"),
        ({"model": "a/b", "batch_size": 0}, "batch_size must be >= 1"),
        ({"model": "a/b", "max_concurrency": 0}, "max_concurrency must be >= 1"),
        ({"model": "a/b", "dimensions": 0}, "dimensions must be >= 1"),
        ({"model": "a/b", "timeout": 0}, "timeout must be > 0"),
        ({"model": "a/b", "max_retries": -1}, "max_retries must be >= 0"),
        ({"model": "a/b", "deadline": -5}, "deadline must be > 0"),
        ({"model": "a/b", "pooling": "max"}, "pooling"),
        ({"model": "a/b", "truncation_direction": "up"}, "truncation_direction"),
        ({"model": "a/b", "batch_size": "many"}, "batch_size"),
        ({"model": "a/b", "batchsize": 8}, "(?s)batchsize.*Extra inputs"),
    ],
)
def test_invalid_settings_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        HuggingFaceInferenceEmbeddings(**kwargs, token=PLANTED)
    assert isinstance(info.value, ValueError)
    assert PLANTED not in str(info.value)


@pytest.mark.parametrize("name", ["token", "api_key"])
def test_token_and_its_alias_api_key_reach_the_server(srv: ServerHandle, name: str) -> None:
    emb = HuggingFaceInferenceEmbeddings(endpoint_url=srv.url, **{name: PLANTED})
    assert emb.token is not None
    assert emb.token.get_secret_value() == PLANTED
    emb.embed_query(QUERY)
    assert srv.counters.headers[-1]["authorization"] == f"Bearer {PLANTED}"


def test_ambient_token_is_not_read_into_the_field_nor_sent_to_an_endpoint(
    srv: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", PLANTED)
    emb = HuggingFaceInferenceEmbeddings(endpoint_url=srv.url)
    assert emb.token is None
    emb.embed_documents(TEXTS)
    assert srv.counters.headers
    assert all("authorization" not in h for h in srv.counters.headers)


def test_token_never_shows(
    srv: ServerHandle, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    emb = HuggingFaceInferenceEmbeddings(
        endpoint_url=srv.url,
        token=PLANTED,
        headers={"X-Api-Key": PLANTED, "X-Trace": "visible"},
        max_retry_wait=0.01,
    )
    emb.embed_documents(TEXTS)
    srv.script(None, CannedResponse(503, {"error": "loading", "estimated_time": 0.01}))
    emb.embed_query(QUERY)  # retried once: a debug log record
    srv.script(None, CannedResponse(401, {"error": f"bad token {PLANTED[:6]}..."}))
    with pytest.raises(AuthenticationError) as info:
        emb.embed_documents(TEXTS)
    with pytest.raises(ConfigurationError) as invalid:
        HuggingFaceInferenceEmbeddings(token=PLANTED, api_key=PLANTED, headers={"a": PLANTED})

    shown = {
        "repr": repr(emb),
        "str": str(emb),
        "dumps": dumps(emb),
        "dumps pretty": dumps(emb, pretty=True),
        "dumpd": json.dumps(dumpd(emb)),
        "to_json": json.dumps(emb.to_json()),
        "model_dump": str(emb.model_dump()),
        "model_dump_json": emb.model_dump_json(),
        "logs": "\n".join(r.getMessage() + str(r.args) for r in caplog.records),
        "error": str(info.value) + repr(info.value),
        "validation error": str(invalid.value),
        "output": "".join(capsys.readouterr()),
    }
    assert any("retrying" in r.getMessage() for r in caplog.records)
    leaks = [where for where, text in shown.items() if PLANTED in text]
    assert leaks == []
    assert "visible" in shown["model_dump_json"]  # other headers are kept
    kwargs = dumpd(emb)["kwargs"]
    # A local endpoint: not HF_TOKEN, which loads(secrets_from_env=True) would fill from the env.
    assert kwargs["token"] == {"lc": 1, "type": "secret", "id": ["HFRAG_TOKEN"]}
    assert kwargs["header:X-Api-Key"] == {
        "lc": 1,
        "type": "secret",
        "id": ["HFRAG_HEADER_X_API_KEY"],
    }


async def test_sync_methods_work_inside_a_running_loop(srv: ServerHandle) -> None:
    emb = embeddings("router", srv.url)
    docs = emb.embed_documents(TEXTS)  # blocking call from a coroutine, as in Jupyter
    assert docs == await emb.aembed_documents(TEXTS)
    assert emb.embed_query(QUERY) == await emb.aembed_query(QUERY)


def test_async_methods_work_across_event_loops(srv: ServerHandle) -> None:
    emb = embeddings("endpoint", srv.url)
    first = asyncio.run(emb.aembed_query(QUERY))
    second = asyncio.run(emb.aembed_query(QUERY))  # a new loop; pooled connections still fine
    assert first == second == emb.embed_query(QUERY)


def test_dumps_round_trips_with_the_secret_given_separately() -> None:
    from langchain_core.load import loads

    emb = HuggingFaceInferenceEmbeddings(model="a/b", token=PLANTED, batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # loads() is marked beta
        back = loads(
            dumps(emb),
            secrets_map={"HF_TOKEN": PLANTED},
            valid_namespaces=["hfrag"],
            allowed_objects=[HuggingFaceInferenceEmbeddings],
        )
    assert isinstance(back, HuggingFaceInferenceEmbeddings)
    assert (back.model, back.batch_size) == ("a/b", 8)
    assert back.token is not None
    assert back.token.get_secret_value() == PLANTED


def test_a_pickle_after_use_carries_no_credential_and_works(srv: ServerHandle) -> None:
    import pickle

    emb = HuggingFaceInferenceEmbeddings(endpoint_url=srv.url, token=PLANTED)
    vector = emb.embed_query(QUERY)  # a client with open connections
    data = pickle.dumps(emb)
    assert PLANTED.encode() not in data
    back = pickle.loads(data)
    assert back.token is None
    assert back.embed_query(QUERY) == vector
