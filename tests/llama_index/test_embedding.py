"""The LlamaIndex adapter on the local server: prompts, batching, events, credentials, loops."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.storage.kvstore import SimpleKVStore

from hfrag.errors import AuthenticationError, ConfigurationError
from hfrag.llama_index import HuggingFaceInferenceEmbedding
from hfrag.server.testing import CannedResponse, ServerHandle
from tests.adapters import EMBED_MODEL, PLANTED, expected, target_kwargs

TEXTS = ["The Eiffel tower is in Paris.", "Bananas are yellow.", "Rust has a borrow checker."]
QUERY = "Where is the Eiffel tower?"
PROMPTS = {"query_prompt_name": "query", "document_prompt_name": "document"}
INSTRUCTIONS = {"query_instruction": "query: ", "document_instruction": "passage: "}


def embedding(target: str, url: str, **kw: Any) -> HuggingFaceInferenceEmbedding:
    return HuggingFaceInferenceEmbedding(**target_kwargs(target, url), **kw)


def run_all(mode: str, emb: HuggingFaceInferenceEmbedding) -> dict[str, Any]:
    """Every public embedding method, sync or async (from a fresh loop)."""
    if mode == "sync":
        return {
            "query": emb.get_query_embedding(QUERY),
            "text": emb.get_text_embedding(TEXTS[0]),
            "batch": emb.get_text_embedding_batch(TEXTS),
        }

    async def go() -> dict[str, Any]:
        return {
            "query": await emb.aget_query_embedding(QUERY),
            "text": await emb.aget_text_embedding(TEXTS[0]),
            "batch": await emb.aget_text_embedding_batch(TEXTS),
        }

    return asyncio.run(go())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("how", ["prompt_name", "instruction"])
def test_query_and_document_prompts_reach_the_server(
    srv: ServerHandle, target: str, mode: str, how: str
) -> None:
    settings = PROMPTS if how == "prompt_name" else INSTRUCTIONS
    out = run_all(mode, embedding(target, srv.url, **settings))

    docs = expected(srv, [f"passage: {t}" for t in TEXTS])
    np.testing.assert_allclose(out["query"], expected(srv, [f"query: {QUERY}"])[0], atol=1e-6)
    np.testing.assert_allclose(out["text"], docs[0], atol=1e-6)
    np.testing.assert_allclose(out["batch"], docs, atol=1e-6)
    assert isinstance(out["batch"][0][0], float)
    bodies = [b for b in srv.counters.bodies if isinstance(b, dict) and "inputs" in b]
    if how == "prompt_name":
        assert [b.get("prompt_name") for b in bodies] == ["query", "document", "document"]
        assert [b["inputs"] for b in bodies] == [[QUERY], TEXTS[:1], TEXTS]
    else:
        assert all("prompt_name" not in b for b in bodies)
        assert bodies[0]["inputs"] == [f"query: {QUERY}"]
        assert bodies[2]["inputs"] == [f"passage: {t}" for t in TEXTS]


class _Recorder(BaseEventHandler):
    events: list[str] = []

    @classmethod
    def class_name(cls) -> str:
        return "Recorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(type(event).__name__)


@pytest.fixture
def instrumentation() -> Iterator[list[str]]:
    """Names of the LlamaIndex instrumentation events emitted during the test."""
    recorder = _Recorder(events=[])
    root = get_dispatcher()
    root.add_event_handler(recorder)
    try:
        yield recorder.events
    finally:
        root.event_handlers.remove(recorder)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_embed_batch_size_is_honoured_in_one_call_with_one_event(
    srv: ServerHandle, mode: str, instrumentation: list[str]
) -> None:
    debug = LlamaDebugHandler()
    emb = embedding(
        "router", srv.url, embed_batch_size=7, callback_manager=CallbackManager([debug])
    )
    texts = [f"text number {i}" for i in range(25)]
    if mode == "sync":
        vectors = emb.get_text_embedding_batch(texts)
    else:
        vectors = asyncio.run(emb.aget_text_embedding_batch(texts))

    np.testing.assert_allclose(vectors, expected(srv, texts), atol=1e-6)
    assert sorted(srv.counters.batch_sizes) == [4, 7, 7, 7]
    pairs = debug.get_event_pairs(CBEventType.EMBEDDING)
    assert len(pairs) == 1  # one event for the whole list; the client does the batching
    assert pairs[0][1].payload is not None
    assert len(pairs[0][1].payload["chunks"]) == 25
    assert instrumentation.count("EmbeddingStartEvent") == 1
    assert instrumentation.count("EmbeddingEndEvent") == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_show_progress_per_call_draws_a_bar(
    srv: ServerHandle, mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    emb = embedding("endpoint", srv.url, embed_batch_size=5)
    texts = [f"text number {i}" for i in range(20)]
    if mode == "sync":
        emb.get_text_embedding_batch(texts, show_progress=True)
    else:
        asyncio.run(emb.aget_text_embedding_batch(texts, show_progress=True))
    assert "20/20" in capsys.readouterr().err
    emb.get_text_embedding_batch(texts)
    assert "20/20" not in capsys.readouterr().err


def test_batch_size_and_embed_batch_size_are_one_setting(srv: ServerHandle) -> None:
    assert embedding("router", srv.url).embed_batch_size == 32  # hfrag's default, not LlamaIndex's
    assert embedding("router", srv.url, batch_size=5).embed_batch_size == 5
    emb = embedding("router", srv.url, embed_batch_size=6)
    assert emb.batch_size == 6
    assert emb.embeddings_client().options.batch_size == 6
    emb.embed_batch_size = 3
    assert emb.batch_size == 3
    emb.get_text_embedding_batch(TEXTS * 3)
    assert srv.counters.batch_sizes == [3, 3, 3]
    with pytest.raises(ConfigurationError, match="same setting"):
        embedding("router", srv.url, batch_size=5, embed_batch_size=6)
    assert embedding("router", srv.url, batch_size=5, embed_batch_size=5).batch_size == 5
    with pytest.raises(ConfigurationError, match="embed_batch_size"):
        embedding("router", srv.url, embed_batch_size=0)


def test_embeddings_cache_skips_the_server_for_known_texts(srv: ServerHandle) -> None:
    emb = embedding("endpoint", srv.url, embeddings_cache=SimpleKVStore())
    first = emb.get_text_embedding_batch(TEXTS)
    sent = len(srv.counters.bodies)
    assert emb.get_text_embedding_batch(TEXTS) == first
    assert len(srv.counters.bodies) == sent


def test_names() -> None:
    assert HuggingFaceInferenceEmbedding.class_name() == "HuggingFaceInferenceEmbedding"
    assert HuggingFaceInferenceEmbedding(model=EMBED_MODEL).model_name == EMBED_MODEL
    url = "https://user:pw@example.com/embed?sig=abc"
    assert HuggingFaceInferenceEmbedding(endpoint_url=url).model_name == (
        "https://example.com/embed?sig=***"
    )
    named = HuggingFaceInferenceEmbedding(model=EMBED_MODEL, model_name="mine")
    assert named.model_name == "mine"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "model=.*endpoint_url=.*neither"),
        ({"model": "a/b", "endpoint_url": "http://127.0.0.1:1"}, "not both"),
        ({"model": "a/b", "batch_size": 0}, "batch_size must be >= 1"),
        ({"model": "a/b", "pooling": "max"}, "pooling"),
        ({"model": "a/b", "batchsize": 8}, "(?s)batchsize.*Extra inputs"),
    ],
)
def test_invalid_settings_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        HuggingFaceInferenceEmbedding(**kwargs, token=PLANTED)
    assert PLANTED not in str(info.value)


@pytest.mark.parametrize("name", ["token", "api_key"])
def test_token_and_its_alias_api_key_reach_the_server(srv: ServerHandle, name: str) -> None:
    emb = HuggingFaceInferenceEmbedding(endpoint_url=srv.url, **{name: PLANTED})
    emb.get_query_embedding(QUERY)
    assert srv.counters.headers[-1]["authorization"] == f"Bearer {PLANTED}"


def test_ambient_token_is_not_read_into_the_field(
    srv: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", PLANTED)
    emb = HuggingFaceInferenceEmbedding(endpoint_url=srv.url)
    assert emb.token is None
    emb.get_text_embedding_batch(TEXTS)
    assert all("authorization" not in h for h in srv.counters.headers)


def test_token_never_shows(
    srv: ServerHandle,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    instrumentation: list[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    debug = LlamaDebugHandler()
    emb = HuggingFaceInferenceEmbedding(
        endpoint_url=srv.url,
        api_key=PLANTED,
        headers={"Authorization": f"Bearer {PLANTED}"},
        max_retry_wait=0.01,
        callback_manager=CallbackManager([debug]),
    )
    emb.get_text_embedding_batch(TEXTS)
    srv.script(None, CannedResponse(503, {"error": "loading", "estimated_time": 0.01}))
    emb.get_query_embedding(QUERY)  # retried once: a debug log record
    srv.script(None, CannedResponse(401, {"error": "invalid credentials"}))
    with pytest.raises(AuthenticationError) as info:
        emb.get_text_embedding_batch(TEXTS)

    shown = {
        "repr": repr(emb),
        "str": str(emb),
        "to_dict": str(emb.to_dict()),
        "to_json": emb.to_json(),
        "json": emb.json(),
        "model_dump_json": emb.model_dump_json(),
        "to_payload": str(emb.to_payload()),
        "from_dict": repr(HuggingFaceInferenceEmbedding.from_dict(emb.to_dict())),
        "callback payloads": str([e.payload for e in debug.get_events()]),
        "logs": "\n".join(r.getMessage() + str(r.args) for r in caplog.records),
        "error": str(info.value) + repr(info.value),
        "output": "".join(capsys.readouterr()),
    }
    assert any("retrying" in r.getMessage() for r in caplog.records)
    leaks = [where for where, text in shown.items() if PLANTED in text]
    assert leaks == []
    assert json.loads(shown["to_json"])["class_name"] == "HuggingFaceInferenceEmbedding"


async def test_sync_methods_work_inside_a_running_loop(srv: ServerHandle) -> None:
    emb = embedding("router", srv.url)
    batch = emb.get_text_embedding_batch(TEXTS)  # blocking call from a coroutine (Jupyter)
    assert batch == await emb.aget_text_embedding_batch(TEXTS)
    assert emb.get_query_embedding(QUERY) == await emb.aget_query_embedding(QUERY)


def test_async_methods_work_across_event_loops(srv: ServerHandle) -> None:
    emb = embedding("endpoint", srv.url)
    first = asyncio.run(emb.aget_query_embedding(QUERY))
    second = asyncio.run(emb.aget_query_embedding(QUERY))
    assert first == second == emb.get_query_embedding(QUERY)


def test_a_pickle_after_use_carries_no_credential_and_works(srv: ServerHandle) -> None:
    import pickle

    emb = HuggingFaceInferenceEmbedding(endpoint_url=srv.url, token=PLANTED)
    vector = emb.get_query_embedding(QUERY)  # a client with open connections
    data = pickle.dumps(emb)
    assert PLANTED.encode() not in data
    back = pickle.loads(data)
    assert back.token is None
    assert back.get_query_embedding(QUERY) == vector


def test_deep_copies_build_their_own_client(srv: ServerHandle) -> None:
    import copy

    emb = embedding("endpoint", srv.url, token=PLANTED)
    first = emb.get_query_embedding(QUERY)  # the client and its pool now exist
    for clone in (copy.deepcopy(emb), emb.model_copy(deep=True)):
        assert clone.get_query_embedding(QUERY) == first
        assert clone.embeddings_client() is not emb.embeddings_client()
        assert srv.counters.headers[-1]["authorization"] == f"Bearer {PLANTED}"
    assert emb.get_query_embedding(QUERY) == first
