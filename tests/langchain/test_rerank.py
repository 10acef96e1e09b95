"""The LangChain rerankers on the local server: retrievers end to end, copies, fields, secrets."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import pickle
from typing import Any

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
from langchain_core.documents import Document
from langchain_core.load import dumpd, dumps
from langchain_core.vectorstores import InMemoryVectorStore

from hfrag.errors import AuthenticationError, ConfigurationError, InputError
from hfrag.langchain import (
    HuggingFaceInferenceCrossEncoder,
    HuggingFaceInferenceEmbeddings,
    HuggingFaceInferenceReranker,
)
from hfrag.server import ServerConfig
from hfrag.server.testing import CannedResponse, ServerHandle
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


def documents() -> list[Document]:
    return [Document(page_content=t, metadata={"source": i, "tags": ["a"]}, id=str(i))
            for i, t in enumerate(TEXTS)]  # fmt: skip


def reranker(target: str, url: str, **kw: Any) -> HuggingFaceInferenceReranker:
    return HuggingFaceInferenceReranker(**rerank_kwargs(target, url), **kw)


def use(adapter: Any) -> Any:
    """One call of either adapter class."""
    if isinstance(adapter, HuggingFaceInferenceReranker):
        return adapter.compress_documents(documents(), QUERY)
    return adapter.score([(QUERY, TEXTS[0])])


def compress(mode: str, compressor: Any, docs: list[Document], query: str) -> list[Document]:
    if mode == "sync":
        return list(compressor.compress_documents(docs, query))
    return list(asyncio.run(compressor.acompress_documents(docs, query)))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_contextual_compression_retriever_reranks_what_the_store_found(
    rerank_srv: ServerHandle, target: str, mode: str
) -> None:
    chunks, queries = make_corpus(300)
    embeddings = HuggingFaceInferenceEmbeddings(model=EMBED_MODEL, router_url=rerank_srv.url)
    store = InMemoryVectorStore.from_texts(chunks, embeddings)
    # the store's own embedding batches are sized by the endpoint, so count from here on
    rerank_srv.counters.reset()
    retriever = ContextualCompressionRetriever(
        base_compressor=reranker(target, rerank_srv.url, top_n=3),
        base_retriever=store.as_retriever(search_kwargs={"k": 20}),
    )

    async def all_async() -> list[list[Document]]:
        return list(await asyncio.gather(*(retriever.ainvoke(queries[i]) for i in CHECKED)))

    if mode == "sync":
        results = [retriever.invoke(queries[i]) for i in CHECKED]
    else:
        results = asyncio.run(all_async())

    for i, hits in zip(CHECKED, results, strict=True):
        assert len(hits) == 3
        assert hits[0].page_content == chunks[i]
        scores = [d.metadata["relevance_score"] for d in hits]
        assert scores == sorted(scores, reverse=True)
        assert scores == pytest.approx(
            rerank_scores(rerank_srv, queries[i], [d.page_content for d in hits])
        )
    # 20 documents per query went to the re-ranker, in one request each
    reranked = [b for b in rerank_srv.counters.batch_sizes if b == 20]
    assert len(reranked) == len(CHECKED)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_langchains_cross_encoder_reranker_with_hfrags_cross_encoder(
    rerank_srv: ServerHandle, target: str, mode: str
) -> None:
    encoder = HuggingFaceInferenceCrossEncoder(**rerank_kwargs(target, rerank_srv.url))
    compressor = CrossEncoderReranker(model=encoder, top_n=2)
    docs = documents()
    out = compress(mode, compressor, docs, QUERY)
    assert [d.page_content for d in out] == [TEXTS[2], TEXTS[1]]
    assert out[0] is docs[2]  # LangChain's reranker returns the caller's objects, unscored
    ours = compress(mode, reranker(target, rerank_srv.url, top_n=2), docs, QUERY)
    assert [d.page_content for d in ours] == [d.page_content for d in out]


def test_cross_encoder_scores_pairs_in_order_sync_and_async(rerank_srv: ServerHandle) -> None:
    encoder = HuggingFaceInferenceCrossEncoder(endpoint_url=rerank_srv.url)
    pairs = [(QUERY, TEXTS[0]), ("bananas", TEXTS[0]), (QUERY, TEXTS[2]), (QUERY, "")]
    scores = encoder.score(pairs)
    assert scores[:3] == pytest.approx([rerank_scores(rerank_srv, q, [t])[0] for q, t in pairs[:3]])
    assert scores[3] == float("-inf")
    assert asyncio.run(encoder.ascore(pairs)) == scores
    assert all(type(s) is float for s in scores)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_callers_documents_are_never_changed(rerank_srv: ServerHandle, mode: str) -> None:
    docs = documents()
    before = [d.model_dump() for d in docs]
    out = compress(mode, reranker("endpoint", rerank_srv.url, top_n=None), docs, QUERY)
    assert [d.model_dump() for d in docs] == before
    assert [d.page_content for d in out] == [TEXTS[2], TEXTS[1], TEXTS[0]]
    assert all(o is not d for o in out for d in docs)
    assert out[0].id == "2"
    assert out[0].metadata == {
        "source": 2,
        "tags": ["a"],
        "relevance_score": out[0].metadata["relevance_score"],
    }
    out[0].metadata["tags"].append("changed")  # a deep copy: the original's list stays
    assert docs[2].metadata["tags"] == ["a"]


def test_cuts_empty_inputs_and_empty_documents(
    rerank_srv: ServerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    docs = [*documents(), Document(page_content="   ")]
    assert reranker("router", rerank_srv.url).compress_documents([], QUERY) == []
    assert rerank_srv.counters.total() == 0
    kept = reranker("router", rerank_srv.url, top_n=None, score_threshold=0.95)
    assert [d.page_content for d in kept.compress_documents(docs, QUERY)] == [TEXTS[2]]
    everything = reranker("router", rerank_srv.url, top_n=10).compress_documents(docs, QUERY)
    assert len(everything) == 3  # the blank document is not sent and not returned
    assert "at positions 3" in caplog.text
    with pytest.raises(InputError, match="query is empty"):
        kept.compress_documents(docs, " ")


def test_settings_reach_the_server_and_a_reassigned_field_rebuilds_the_client(
    rerank_srv: ServerHandle,
) -> None:
    settings: dict[str, Any] = {"truncate": False, "truncation_direction": "left"}
    settings.update(raw_scores=True, batch_size=2, max_concurrency=1)
    rr = reranker("endpoint", rerank_srv.url, **settings)
    rr.compress_documents(documents(), QUERY)
    assert rerank_srv.counters.bodies[-1] == {
        "query": QUERY,
        "texts": [TEXTS[2]],
        "raw_scores": True,
        "truncate": False,
        "truncation_direction": "left",
    }
    assert rerank_srv.counters.batch_sizes == [2, 1]
    rr.batch_size = 3
    rr.compress_documents(documents(), QUERY)
    assert rerank_srv.counters.batch_sizes == [2, 1, 3]
    cohere = reranker("endpoint", rerank_srv.url + "/v1/rerank", served_model=RERANK_MODEL)
    cohere.compress_documents(documents(), QUERY)
    assert rerank_srv.counters.bodies[-1]["model"] == RERANK_MODEL


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (HuggingFaceInferenceReranker, {}, "model=.*endpoint_url=.*neither"),
        (HuggingFaceInferenceReranker, {"model": "a/b", "top_n": 0}, "top_n must be"),
        (HuggingFaceInferenceReranker, {"model": "a/b", "score_threshold": float("nan")}, "thresh"),
        (HuggingFaceInferenceReranker, {"model": "a/b", "protocol": "jina"}, "protocol"),
        (HuggingFaceInferenceReranker, {"model": "a/b", "protocol": "tei"}, "needs endpoint_url"),
        (HuggingFaceInferenceReranker, {"model": "a/b", "batch_size": 0}, "batch_size must be"),
        (HuggingFaceInferenceReranker, {"model": "a/b", "topn": 3}, "(?s)topn.*Extra inputs"),
        (HuggingFaceInferenceReranker, {"model": "a/b", "raw_scores": "maybe"}, "raw_scores"),
        (HuggingFaceInferenceCrossEncoder, {"model": "a/b", "top_n": 3}, "(?s)top_n.*Extra inputs"),
        (HuggingFaceInferenceCrossEncoder, {"model": "a/b", "label": ""}, "label must not be"),
    ],
)  # fmt: skip
def test_invalid_settings_fail_at_construction(
    cls: type, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        cls(**kwargs, token=PLANTED)
    assert isinstance(info.value, ValueError)
    assert PLANTED not in str(info.value)


@pytest.mark.parametrize("cls", [HuggingFaceInferenceReranker, HuggingFaceInferenceCrossEncoder])
def test_token_never_shows(
    make_server: Any,
    cls: type,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    server = make_server(ServerConfig.default(primary=RERANK_MODEL, api_key=PLANTED))
    headers = {"X-Api-Key": PLANTED, "X-Trace": "visible"}
    adapter = cls(endpoint_url=server.url, token=PLANTED, headers=headers, max_retry_wait=0.01)
    use(adapter)
    assert server.counters.headers[-1]["authorization"] == f"Bearer {PLANTED}"
    server.script(None, CannedResponse(401, {"error": "bad credentials"}))
    with pytest.raises(AuthenticationError) as info:
        use(adapter)
    pickled = pickle.dumps(adapter)
    shown = {
        "repr": repr(adapter),
        "str": str(adapter),
        "dumps": dumps(adapter),
        "dumpd": json.dumps(dumpd(adapter)),
        "model_dump_json": adapter.model_dump_json(),
        "pickle": pickled.decode("latin-1"),
        "logs": "\n".join(r.getMessage() + str(r.args) for r in caplog.records),
        "error": str(info.value) + repr(info.value),
        "output": "".join(capsys.readouterr()),
    }
    leaks = [where for where, text in shown.items() if PLANTED in text]
    assert leaks == []
    # Not a Hugging Face host: not HF_TOKEN, so loads() cannot fill in the ambient token.
    assert dumpd(adapter)["kwargs"]["token"] == {"lc": 1, "type": "secret", "id": ["HFRAG_TOKEN"]}
    # The unpickled copy has no credential: this server, which wants one, says so.
    back = pickle.loads(pickled)
    assert back.token is None
    assert back.headers == {"X-Trace": "visible"}
    with pytest.raises(AuthenticationError):
        use(back)
    # A deep copy is the same adapter, credential included, with its own client.
    twin = copy.deepcopy(adapter)
    assert twin.rerank_client() is not adapter.rerank_client()
    use(twin)
    assert server.counters.headers[-1]["authorization"] == f"Bearer {PLANTED}"


def test_an_unpickled_reranker_works(rerank_srv: ServerHandle) -> None:
    rr = reranker("router", rerank_srv.url, top_n=2)
    first = rr.compress_documents(documents(), QUERY)
    back = pickle.loads(pickle.dumps(rr))
    assert back.compress_documents(documents(), QUERY) == first
    encoder = HuggingFaceInferenceCrossEncoder(endpoint_url=rerank_srv.url)
    encoder.score([(QUERY, "x")])
    assert pickle.loads(pickle.dumps(encoder)).score([(QUERY, "x")]) == encoder.score(
        [(QUERY, "x")]
    )


async def test_sync_methods_work_inside_a_running_loop(rerank_srv: ServerHandle) -> None:
    rr = reranker("endpoint", rerank_srv.url)
    assert rr.compress_documents(documents(), QUERY) == await rr.acompress_documents(
        documents(), QUERY
    )


def test_async_methods_are_native() -> None:
    from langchain_core.documents import BaseDocumentCompressor

    base = BaseDocumentCompressor.acompress_documents
    assert HuggingFaceInferenceReranker.acompress_documents is not base
    assert asyncio.iscoroutinefunction(HuggingFaceInferenceCrossEncoder.ascore)
