"""A class pointed at a server of another task, or at nothing, is told what is there.

The servers are ``hfrag serve``'s layout (one listener per deployment, each with its own
``/info``), as a user meets it: each wrong pairing fails once, with advice naming what that
server serves; a refused connection names the URL the user gave apart from the path hfrag sent
to; a deadline error names its cause without repeating its text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from hfrag.errors import (
    InferenceConnectionError,
    InferenceTimeoutError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
)
from hfrag.server import ServerConfig
from hfrag.server.testing import DeploymentsHandle, serve_deployments
from hfrag.tasks import ChatClient, EmbeddingsClient, RerankClient, TextGenerationClient
from hfrag.tasks.served import served_from_body, served_from_info, wrong_server_advice

EMBED = "serves an embedding model (hfrag/hash-embed, from its GET /info), not"
GENERATE = "serves a text-generation model (hfrag/extractive-gen, from its GET /info), not"
NOT_GENERATION = "not chat or text generation: point endpoint_url at a chat or text-generation"
DOWN = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def layout() -> Iterator[DeploymentsHandle]:
    with serve_deployments(ServerConfig()) as handle:
        yield handle


def test_embeddings_at_a_chat_route_names_the_generation_server(layout: DeploymentsHandle) -> None:
    url = layout.urls["generate"] + "/v1/chat/completions"
    with pytest.raises(InvalidRequestError) as info:
        EmbeddingsClient(endpoint_url=url).embed(["Where is Paris?"])
    assert f"{url} {GENERATE} embeddings" in str(info.value)
    assert "missing field `messages`" in str(info.value)  # what happened, still said


def test_embeddings_at_a_reranker_names_the_reranker(layout: DeploymentsHandle) -> None:
    with pytest.raises(InvalidRequestError, match=r"serves a re-ranker \(hfrag/hash-rerank"):
        EmbeddingsClient(endpoint_url=layout.urls["rerank"]).embed(["Where is Paris?"])


@pytest.mark.parametrize("deployment", ["embed", "rerank"])
def test_chat_at_a_tei_server_names_what_it_serves(
    layout: DeploymentsHandle, deployment: str
) -> None:
    url = layout.urls[deployment]
    with pytest.raises(NotFoundError) as info:
        ChatClient(endpoint_url=url).chat([{"role": "user", "content": "Where is Paris?"}])
    text = str(info.value)
    assert f"{url} serves" in text
    assert NOT_GENERATION in text
    assert "Routes by server type" not in text  # the cause replaces the generic route list


def test_the_llm_at_an_embedding_server_names_it(layout: DeploymentsHandle) -> None:
    url = layout.urls["embed"]
    with pytest.raises(MalformedResponseError) as info:
        TextGenerationClient(endpoint_url=url).generate("Where is Paris?")
    assert f"{url} {EMBED} chat or text generation" in str(info.value)


def test_a_wrong_pairing_fails_once_without_retries(layout: DeploymentsHandle) -> None:
    embed = layout.listeners["embed"].counters
    before = embed.total("/v1/chat/completions"), embed.total("/info")
    with pytest.raises(NotFoundError):
        ChatClient(endpoint_url=layout.urls["embed"], max_retries=4).chat(
            [{"role": "user", "content": "Where is Paris?"}]
        )
    after = embed.total("/v1/chat/completions"), embed.total("/info")
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


def test_the_right_server_keeps_its_own_errors(layout: DeploymentsHandle) -> None:
    client = RerankClient(endpoint_url=layout.urls["rerank"])
    assert client.rerank("Where is Paris?", ["Paris is in France.", "Bananas"], top_n=1)
    assert EmbeddingsClient(endpoint_url=layout.urls["embed"]).embed(["x"]).shape == (1, 384)


def test_framework_classes_name_the_cause_too(layout: DeploymentsHandle) -> None:
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    from hfrag.langchain import ChatHuggingFaceInference, HuggingFaceInferenceEmbeddings
    from hfrag.langchain import HuggingFaceInferenceLLM as LangChainLLM
    from hfrag.llama_index import HuggingFaceInferenceLLM as LlamaIndexLLM

    embed = layout.urls["embed"]
    with pytest.raises(NotFoundError, match=re.escape(EMBED)):
        ChatHuggingFaceInference(endpoint_url=embed).invoke("Where is Paris?")
    with pytest.raises(MalformedResponseError, match=re.escape(EMBED)):
        LangChainLLM(endpoint_url=embed).invoke("Where is Paris?")
    with pytest.raises(MalformedResponseError, match=re.escape(EMBED)):
        LlamaIndexLLM(endpoint_url=embed).complete("Where is Paris?")
    chat_route = layout.urls["generate"] + "/v1/chat/completions"
    with pytest.raises(InvalidRequestError, match=re.escape(GENERATE)):
        HuggingFaceInferenceEmbeddings(endpoint_url=chat_route).embed_query("Where is Paris?")


def test_llama_index_metadata_comes_from_a_generation_servers_info(
    layout: DeploymentsHandle,
) -> None:
    pytest.importorskip("llama_index.core")
    from hfrag.llama_index import HuggingFaceInferenceLLM

    tgi = HuggingFaceInferenceLLM(endpoint_url=layout.urls["generate"]).metadata
    assert (tgi.model_name, tgi.context_window) == ("hfrag/extractive-gen", 8192)
    # One server with every route whose /info describes its embedding model (ServerConfig()):
    # its embedding model's id and limits are not the LLM's.
    shared = HuggingFaceInferenceLLM(endpoint_url=layout.urls["router"]).metadata
    assert shared.model_name != "hfrag/hash-embed"
    assert shared.context_window == 3900  # LlamaIndex's default, not the embedder's limit


def test_a_refused_connection_names_the_url_given_and_the_path_apart() -> None:
    with pytest.raises(InferenceConnectionError) as info:
        ChatClient(endpoint_url=DOWN).chat([{"role": "user", "content": "hi"}])
    text = str(info.value)
    assert f"Nothing is listening at {DOWN}, the endpoint_url given" in text
    assert "hfrag was sending to /v1/chat/completions there" in text
    given = DOWN + "/my/embed"
    with pytest.raises(InferenceConnectionError) as info:
        EmbeddingsClient(endpoint_url=given).embed(["hi"])
    assert f"Nothing is listening at {given}, the endpoint_url given." in str(info.value)


def test_a_deadline_error_names_its_cause_without_repeating_it() -> None:
    with pytest.raises(InferenceTimeoutError) as info:
        EmbeddingsClient(endpoint_url=DOWN, deadline=1.0).embed(["hi"])
    text = str(info.value)
    assert text.count("connection failed") == 0  # the cause's own text is not repeated
    assert text.count("no response from") == 1
    assert "(connection_refused)" in text
    assert f"Nothing is listening at {DOWN}, the endpoint_url given" in text
    assert "a probe of what the server is" in text  # the /v1/models or /info probe


@pytest.mark.parametrize(
    ("info", "served"),
    [
        ({"model_id": "m", "model_type": {"embedding": {"pooling": "mean"}}}, ("embeddings", "m")),
        ({"model_id": "m", "model_type": {"reranker": {"id2label": {}}}}, ("reranking", "m")),
        ({"model_id": "m", "model_type": {"classifier": {}}}, ("classification", "m")),
        ({"model_id": "m", "max_total_tokens": 8192}, ("generation", "m")),
        ({"router": "text-generation-router"}, ("generation", "unknown")),
        ({}, None),
        ({"model_id": "m"}, None),
    ],
)
def test_what_info_says_is_served(info: dict[str, Any], served: Any) -> None:
    assert served_from_info(info) == served


def test_without_info_the_422s_words_name_the_route() -> None:
    axum = "Failed to deserialize the JSON body into the target type: missing field `messages`"
    assert served_from_body(axum) == ("generation", "chat completions (it asks for `messages`)")
    advice = wrong_server_advice("embeddings", "http://h/x", {}, axum)
    assert advice is not None
    assert advice.startswith("http://h/x serves a route for chat completions")
    assert wrong_server_advice("generation", "http://h/x", {}, axum) is None
    assert wrong_server_advice("embeddings", "http://h/x", {}, "batch size 40 > 32") is None
    reranker = {"model_id": "m", "model_type": {"classifier": {}}}
    assert wrong_server_advice("reranking", "http://h", reranker) is None


def test_a_stream_names_the_cause_too(layout: DeploymentsHandle) -> None:
    client = ChatClient(endpoint_url=layout.urls["embed"])
    with pytest.raises(NotFoundError, match=re.escape(EMBED)):
        list(client.stream_chat([{"role": "user", "content": "Where is Paris?"}]))


async def test_an_async_stream_names_the_cause_too(layout: DeploymentsHandle) -> None:
    client = TextGenerationClient(endpoint_url=layout.urls["embed"], task="chat")
    with pytest.raises(NotFoundError, match=re.escape(EMBED)):
        async for _ in client.astream("Where is Paris?"):
            pass


def test_a_424_from_an_embedding_server_names_it_instead_of_retry_advice() -> None:
    from hfrag.errors import BackendError
    from hfrag.server.testing import CannedResponse, serve_in_thread

    with serve_in_thread(ServerConfig()) as srv:  # /info: the embedding model
        srv.script("/v1/chat/completions", CannedResponse(424, {"error": "no chat model"}))
        with pytest.raises(BackendError) as info:
            ChatClient(endpoint_url=srv.url).chat([{"role": "user", "content": "hi"}])
        assert srv.counters.total("/v1/chat/completions") == 1  # not retried
    text = str(info.value)
    assert EMBED in text
    assert "retried where that is safe" not in text
