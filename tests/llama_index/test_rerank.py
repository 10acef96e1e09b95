"""The LlamaIndex postprocessor on the local server: query engines end to end, copies, events."""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
from typing import Any

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.llms import MockLLM
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from hfrag.errors import AuthenticationError, ConfigurationError, InputError
from hfrag.llama_index import HuggingFaceInferenceEmbedding, HuggingFaceInferenceRerank
from hfrag.server import ServerConfig
from hfrag.server.testing import ServerHandle
from tests.adapters import (
    EMBED_MODEL,
    PLANTED,
    RERANK_MODEL,
    make_corpus,
    rerank_kwargs,
    rerank_scores,
)

QUERY = "Where is the Eiffel tower?"
TEXTS = ["Bananas are yellow.", "The tower is tall.", "The Eiffel tower is in Paris."]
CHECKED = range(0, 300, 37)


def nodes() -> list[NodeWithScore]:
    """Scored nodes whose metadata is kept out of what the model reads (as out of embeddings)."""
    return [
        NodeWithScore(
            node=TextNode(
                text=t, id_=str(i), metadata={"tags": ["a"]}, excluded_embed_metadata_keys=["tags"]
            ),
            score=i / 10,
        )
        for i, t in enumerate(TEXTS)
    ]


def rerank(target: str, url: str, **kw: Any) -> HuggingFaceInferenceRerank:
    return HuggingFaceInferenceRerank(**rerank_kwargs(target, url), **kw)


def postprocess(mode: str, post: HuggingFaceInferenceRerank, items: Any) -> list[NodeWithScore]:
    if mode == "sync":
        return post.postprocess_nodes(items, query_str=QUERY)
    return asyncio.run(post.apostprocess_nodes(items, query_str=QUERY))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_query_engine_with_the_postprocessor(
    rerank_srv: ServerHandle, target: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks, queries = make_corpus(300)
    emb = HuggingFaceInferenceEmbedding(model=EMBED_MODEL, router_url=rerank_srv.url)
    monkeypatch.setattr(Settings, "_embed_model", emb)  # nothing may fall back to a default
    index = VectorStoreIndex.from_documents([Document(text=c) for c in chunks], embed_model=emb)
    # the index's own embedding batches are sized by the endpoint, so count from here on
    rerank_srv.counters.reset()
    post = rerank(target, rerank_srv.url, top_n=3)
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=20, node_postprocessors=[post])

    if mode == "sync":
        responses = [engine.query(queries[i]) for i in CHECKED]
    else:

        async def go() -> list[Any]:
            return list(await asyncio.gather(*(engine.aquery(queries[i]) for i in CHECKED)))

        responses = asyncio.run(go())

    for i, response in zip(CHECKED, responses, strict=True):
        hits = response.source_nodes
        assert len(hits) == 3
        assert hits[0].node.get_content() == chunks[i]
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        texts = [h.node.get_content() for h in hits]
        assert scores == pytest.approx(rerank_scores(rerank_srv, queries[i], texts))
    assert rerank_srv.counters.batch_sizes.count(20) == len(CHECKED)  # one rerank request each


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_callers_nodes_are_never_changed(rerank_srv: ServerHandle, mode: str) -> None:
    items = nodes()
    before = [(n.score, n.node.model_dump()) for n in items]
    post = rerank("endpoint", rerank_srv.url, top_n=None, keep_retrieval_score=True)
    out = postprocess(mode, post, items)
    assert [(n.score, n.node.model_dump()) for n in items] == before
    assert [n.node.node_id for n in out] == ["2", "1", "0"]
    assert [n.score for n in out] == pytest.approx(rerank_scores(rerank_srv, QUERY, TEXTS[::-1]))
    assert [n.node.metadata["retrieval_score"] for n in out] == [0.2, 0.1, 0.0]
    assert all(o is not n and o.node is not n.node for o in out for n in items)
    out[0].node.metadata["tags"].append("changed")
    assert items[2].node.metadata == {"tags": ["a"]}
    plain = postprocess(mode, rerank("router", rerank_srv.url), items)
    assert [n.node.metadata for n in plain] == [{"tags": ["a"]}] * 3  # no retrieval_score


def test_cuts_empty_nodes_and_missing_query(rerank_srv: ServerHandle) -> None:
    items = [*nodes(), NodeWithScore(node=TextNode(text=""), score=1.0)]
    post = rerank("router", rerank_srv.url, top_n=None, score_threshold=0.95)
    assert [n.node.node_id for n in post.postprocess_nodes(items, query_str=QUERY)] == ["2"]
    assert (
        len(rerank("router", rerank_srv.url, top_n=10).postprocess_nodes(items, query_str=QUERY))
        == 3
    )
    assert post.postprocess_nodes([], query_str=QUERY) == []
    with pytest.raises(InputError, match="needs a query"):
        post.postprocess_nodes(items)
    with pytest.raises(InputError, match="query is empty"):
        post.postprocess_nodes(items, query_bundle=QueryBundle(""))


def test_events_are_reported(rerank_srv: ServerHandle) -> None:
    debug = LlamaDebugHandler()
    post = rerank("endpoint", rerank_srv.url, callback_manager=CallbackManager([debug]), top_n=2)
    out = post.postprocess_nodes(nodes(), query_str=QUERY)
    start, end = debug.get_event_pairs(CBEventType.RERANKING)[0]
    assert start.payload["query_str"] == QUERY
    assert start.payload["top_k"] == 2
    assert end.payload["nodes"] == out


def test_nodes_are_read_as_embedded_metadata_included(rerank_srv: ServerHandle) -> None:
    node = TextNode(text="The tower.", metadata={"city": "Paris", "path": "/x"})
    node.excluded_embed_metadata_keys = ["path"]
    rerank("endpoint", rerank_srv.url).postprocess_nodes(
        [NodeWithScore(node=node)], query_str=QUERY
    )
    assert rerank_srv.counters.bodies[-1]["texts"] == ["city: Paris\n\nThe tower."]


def test_settings_reach_the_server(rerank_srv: ServerHandle) -> None:
    post = rerank("endpoint", rerank_srv.url + "/v1", batch_size=2, max_concurrency=1)
    post.postprocess_nodes(nodes(), query_str=QUERY)
    assert rerank_srv.counters.total("/v1/rerank", 200) == 2
    assert rerank_srv.counters.bodies[-1] == {
        "query": QUERY,
        "documents": [TEXTS[2]],
        "return_documents": False,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "model=.*endpoint_url=.*neither"),
        ({"model": "a/b", "top_n": -1}, "top_n must be"),
        ({"model": "a/b", "protocol": "cohere"}, "needs endpoint_url"),
        ({"model": "a/b", "function_to_apply": "tanh"}, "function_to_apply"),
        ({"model": "a/b", "keep_retrieval_scores": True}, "(?s)keep_retrieval_scores.*Extra"),
    ],
)
def test_invalid_settings_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        HuggingFaceInferenceRerank(**kwargs, token=PLANTED)
    assert PLANTED not in str(info.value)


def test_token_never_shows_and_copies(make_server: Any) -> None:
    server = make_server(ServerConfig.default(primary=RERANK_MODEL, api_key=PLANTED))
    post = HuggingFaceInferenceRerank(
        endpoint_url=server.url, api_key=PLANTED, headers={"Authorization": f"Bearer {PLANTED}"}
    )
    first = post.postprocess_nodes(nodes(), query_str=QUERY)
    pickled = pickle.dumps(post)
    shown = {
        "repr": repr(post),
        "to_dict": str(post.to_dict()),
        "to_json": post.to_json(),
        "model_dump_json": post.model_dump_json(),
        "pickle": pickled.decode("latin-1"),
        "from_dict": repr(HuggingFaceInferenceRerank.from_dict(post.to_dict())),
    }
    assert [where for where, text in shown.items() if PLANTED in text] == []
    assert json.loads(shown["to_json"])["class_name"] == "HuggingFaceInferenceRerank"
    back = pickle.loads(pickled)
    assert back.token is None
    with pytest.raises(AuthenticationError):  # no credential travelled: the server says so
        back.postprocess_nodes(nodes(), query_str=QUERY)
    twin = copy.deepcopy(post)
    assert twin.rerank_client() is not post.rerank_client()
    assert [n.score for n in twin.postprocess_nodes(nodes(), query_str=QUERY)] == [
        n.score for n in first
    ]


def test_an_unpickled_postprocessor_works(rerank_srv: ServerHandle) -> None:
    post = rerank("router", rerank_srv.url, top_n=2)
    first = post.postprocess_nodes(nodes(), query_str=QUERY)
    back = pickle.loads(pickle.dumps(post))
    assert [n.score for n in back.postprocess_nodes(nodes(), query_str=QUERY)] == [
        n.score for n in first
    ]


async def test_sync_methods_work_inside_a_running_loop(rerank_srv: ServerHandle) -> None:
    post = rerank("endpoint", rerank_srv.url)
    sync = post.postprocess_nodes(nodes(), query_str=QUERY)  # a blocking call, as in Jupyter
    async_ = await post.apostprocess_nodes(nodes(), query_str=QUERY)
    assert [n.score for n in sync] == [n.score for n in async_]


def test_async_postprocessing_is_native() -> None:
    from llama_index.core.postprocessor.types import BaseNodePostprocessor

    base = BaseNodePostprocessor._apostprocess_nodes
    assert HuggingFaceInferenceRerank._apostprocess_nodes is not base
