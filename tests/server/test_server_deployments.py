"""``hfrag serve``'s layout in process (``serve_deployments``): one listener per deployment."""

from __future__ import annotations

import httpx
import pytest

from hfrag.server import ServerConfig
from hfrag.server.testing import serve_deployments


@pytest.fixture(scope="module")
def deployments():
    with serve_deployments(ServerConfig.default()) as srv:
        yield srv


def test_each_listener_describes_its_own_model(deployments):
    urls = deployments.urls
    assert sorted(urls) == ["embed", "generate", "rerank", "router"]
    assert len(set(urls.values())) == 4
    embed = httpx.get(f"{urls['embed']}/info").json()
    assert (embed["model_id"], list(embed["model_type"])) == ("hfrag/hash-embed", ["embedding"])
    rerank = httpx.get(f"{urls['rerank']}/info").json()
    assert (rerank["model_id"], list(rerank["model_type"])) == ("hfrag/hash-rerank", ["reranker"])
    tgi = httpx.get(f"{urls['generate']}/info").json()
    assert tgi["model_id"] == "hfrag/extractive-gen"
    assert tgi["model_pipeline_tag"] == "text-generation"


def test_each_listener_answers_its_own_routes_only(deployments):
    urls = deployments.urls
    r = httpx.post(f"{urls['rerank']}/rerank", json={"query": "bees", "texts": ["bees", "cars"]})
    assert r.status_code == 200
    assert [x["index"] for x in r.json()] == [0, 1]
    assert httpx.post(f"{urls['embed']}/embed", json={"inputs": ["a"]}).status_code == 200
    # a TEI embedding container has no TGI routes, and TGI no TEI ones
    assert httpx.post(f"{urls['embed']}/generate", json={"inputs": "a"}).status_code == 404
    assert httpx.post(f"{urls['generate']}/embed", json={"inputs": ["a"]}).status_code == 404
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    assert httpx.post(f"{urls['generate']}/v1/chat/completions", json=chat).status_code == 200
    model = "hfrag/hash-embed"
    r = httpx.post(f"{urls['router']}/hf-inference/models/{model}", json={"inputs": "a"})
    assert r.status_code == 200


def test_the_reranker_classes_work_against_the_reranker_listener(deployments):
    from langchain_core.documents import Document

    from hfrag.langchain import HuggingFaceInferenceReranker

    docs = [Document(page_content=t) for t in ("cars are fast", "bees make honey")]
    for path in ("/rerank", "/v1/rerank", ""):
        reranker = HuggingFaceInferenceReranker(endpoint_url=deployments.urls["rerank"] + path)
        ranked = reranker.compress_documents(docs, "how do bees make honey")
        assert ranked[0].page_content == "bees make honey", path


def test_listeners_share_one_model_runtime(deployments):
    # a llama.cpp model must only ever run on one thread: every listener uses the same threads
    states = {id(listener.counters) for listener in deployments.listeners.values()}
    assert len(states) == 4
    assert deployments.models is deployments._state.models
