"""Names users bring from langchain-huggingface and LlamaIndex: accepted where they mean the same,
refused naming hfrag's field where they do not; every bad argument is an ``HfragError``."""

from __future__ import annotations

from typing import Any

import pytest

from hfrag import ConfigurationError, HfragError
from hfrag._fields.migration import ALIASES
from hfrag.server.testing import ServerHandle

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from hfrag.langchain import HuggingFaceInferenceEmbeddings
from hfrag.llama_index import HuggingFaceInferenceEmbedding

ADAPTERS = [HuggingFaceInferenceEmbeddings, HuggingFaceInferenceEmbedding]
KEY = "tei-api-key-0123456789"


@pytest.fixture(params=ADAPTERS, ids=lambda c: c.__module__.split(".")[1])
def adapter(request: pytest.FixtureRequest) -> Any:
    return request.param


def embed(emb: Any, texts: list[str]) -> list[list[float]]:
    if hasattr(emb, "embed_documents"):
        return list(emb.embed_documents(texts))
    return list(emb.get_text_embedding_batch(texts))


@pytest.mark.parametrize(
    ("kwargs", "field", "value"),
    [
        ({"repo_id": "a/b"}, "model", "a/b"),
        ({"model_name": "a/b"}, "model", "a/b"),
        ({"model_name": "http://127.0.0.1:9/x"}, "endpoint_url", "http://127.0.0.1:9/x"),
        ({"base_url": "http://127.0.0.1:9"}, "endpoint_url", "http://127.0.0.1:9"),
        ({"model": "a/b", "text_instruction": "passage: "}, "document_instruction", "passage: "),
        ({"model": "a/b", "query_instruction": "query: "}, "query_instruction", "query: "),
        ({"model": "a/b", "embed_batch_size": 7}, "batch_size", 7),
        ({"model": "a/b", "timeout": 5}, "timeout", 5),
        ({"model": "a/b", "model_kwargs": {"normalize": False}}, "normalize", False),
        ({"model": "a/b", "task": "feature-extraction"}, "model", "a/b"),
    ],
)
def test_names_that_mean_the_same_are_accepted(
    adapter: Any, kwargs: dict[str, Any], field: str, value: Any
) -> None:
    assert getattr(adapter(**kwargs), field) == value


@pytest.mark.parametrize("name", ["huggingfacehub_api_token", "auth_token", "token"])
def test_credential_names_are_the_token(adapter: Any, name: str) -> None:
    emb = adapter(model="a/b", **{name: KEY})
    assert emb.token.get_secret_value() == KEY
    assert KEY not in repr(emb)


def test_llama_index_model_name_is_never_accepted_then_lost() -> None:
    emb = HuggingFaceInferenceEmbedding(model_name="BAAI/bge-small-en-v1.5")
    assert emb.model == "BAAI/bge-small-en-v1.5"
    assert emb.model_name == "BAAI/bge-small-en-v1.5"
    named = HuggingFaceInferenceEmbedding(model="a/b", model_name="my label")
    assert (named.model, named.model_name) == ("a/b", "my label")


def test_migrated_settings_reach_the_server(adapter: Any, server: ServerHandle) -> None:
    emb = adapter(
        base_url=server.url,
        auth_token=KEY,
        text_instruction="passage: ",
        embed_batch_size=2,
        model_kwargs={"normalize": False, "truncate": True},
    )
    vectors = embed(emb, ["one", "two", "three"])
    assert len(vectors) == 3
    assert server.counters.batch_sizes == [2, 1]
    body = server.counters.bodies[-1]
    assert body["inputs"][0].startswith("passage: ")
    assert body["normalize"] is False
    assert server.counters.headers[-1]["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"repo_id": "a/b", "model": "c/d"}, "`repo_id` is `model` in hfrag"),
        ({"model": "a/b", "base_url": "http://127.0.0.1:9"}, "not both"),
        ({"model": "a/b", "model_kwargs": {"temperature": 0.3}}, "model_kwargs\\['temperature'\\]"),
        ({"model": "a/b", "model_kwargs": 3}, "model_kwargs must be a mapping"),
        ({"model": "a/b", "task": "text-generation"}, "task='text-generation' does not apply"),
        ({"model": "a/b", "auth_token": lambda: KEY}, "auth_token as a callable"),
        ({"model": "a/b", "batchsize": 3}, "did you mean batch_size="),
        ({"model": "a/b", "batch_size": "many"}, "batch_size.int: Input should be a valid integer"),
        ({"model": "a/b", "batch_size": 0}, "batch_size must be >= 1"),
        ({}, "neither was given"),
    ],
)
def test_bad_arguments_are_hfrag_errors_and_value_errors(
    adapter: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(HfragError, match=message) as info:
        adapter(**kwargs, token=KEY)
    assert isinstance(info.value, ConfigurationError)
    assert isinstance(info.value, ValueError)
    assert KEY not in str(info.value)


def test_the_alias_table_names_hfrag_fields_that_exist(adapter: Any) -> None:
    for name, (field, _source) in ALIASES.items():
        assert field in adapter.model_fields, (name, field)


def test_two_names_for_one_credential_must_agree(adapter: Any) -> None:
    with pytest.raises(ConfigurationError, match="`huggingfacehub_api_token` is `token`") as info:
        adapter(model="a/b", token=KEY, huggingfacehub_api_token=KEY + "x")
    assert KEY not in str(info.value)
    assert adapter(model="a/b", token=KEY, huggingfacehub_api_token=KEY).token is not None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model": "a/b", "repo_id": None},
        {"model": "a/b", "model_kwargs": None},
        {"model": "a/b", "model_kwargs": {}},
        {"repo_id": "a/b", "model_name": ""},
    ],
)
def test_empty_values_of_other_names_change_nothing(adapter: Any, kwargs: dict[str, Any]) -> None:
    assert adapter(**kwargs).model == "a/b"


def test_model_kwargs_disagreeing_with_the_argument_is_refused(adapter: Any) -> None:
    with pytest.raises(ConfigurationError, match="normalize is given both"):
        adapter(model="a/b", normalize=True, model_kwargs={"normalize": False})


def test_llama_index_text_embeddings_inference_arguments_as_they_are(server: ServerHandle) -> None:
    # LlamaIndex TextEmbeddingsInference's arguments: model_name is a label, base_url the target.
    emb = HuggingFaceInferenceEmbedding(
        model_name="BAAI/bge-small-en-v1.5",
        base_url=server.url,
        text_instruction="passage: ",
        query_instruction="query: ",
        embed_batch_size=32,
        timeout=60,
        auth_token=KEY,
    )
    assert (emb.model, emb.endpoint_url) == (None, server.url)
    assert emb.model_name == "BAAI/bge-small-en-v1.5"
    assert len(emb.get_query_embedding("Where is the Eiffel tower?")) == 384
    assert server.counters.bodies[-1]["inputs"] == ["query: Where is the Eiffel tower?"]
    assert server.counters.headers[-1]["authorization"] == f"Bearer {KEY}"


def test_a_url_given_as_model_is_the_endpoint_url(adapter: Any, server: ServerHandle) -> None:
    # langchain-huggingface's HuggingFaceEndpointEmbeddings(model="http://...") before 1.2.2
    emb = adapter(model=server.url)
    assert (emb.model, emb.endpoint_url) == (None, server.url)
    assert len(embed(emb, ["one", "two"])) == 2
    assert server.counters.total("/", 200) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "http://127.0.0.1:9/a", "endpoint_url": "http://127.0.0.1:9/b"}, "not both"),
        ({"model": "http://127.0.0.1:9/a", "base_url": "http://127.0.0.1:9/b"}, "not both"),
    ],
)
def test_a_url_as_model_and_another_endpoint_url_is_refused(
    adapter: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        adapter(**kwargs)
    assert "127.0.0.1:9/a" not in str(info.value)  # a URL may carry a credential


def test_a_chat_model_takes_the_wrapped_llms_settings(server: ServerHandle) -> None:
    # langchain-huggingface's ChatHuggingFace(llm=HuggingFaceEndpoint(...)), carried over
    from hfrag.langchain import ChatHuggingFaceInference, HuggingFaceInferenceLLM

    llm = HuggingFaceInferenceLLM(
        endpoint_url=server.url, api_key=KEY, max_new_tokens=7, temperature=0.0, task="auto"
    )
    chat = ChatHuggingFaceInference(llm=llm)
    assert (chat.endpoint_url, chat.max_new_tokens, chat.temperature) == (server.url, 7, 0.0)
    assert chat.token is not None
    assert chat.token.get_secret_value() == KEY
    chat.invoke("Paris is the capital of France. What is the capital of France?")
    assert server.counters.total("/v1/chat/completions", 200) == 1
    assert server.counters.bodies[-1]["max_tokens"] == 7
    assert server.counters.headers[-1]["authorization"] == f"Bearer {KEY}"
    # An argument given to the chat model itself wins, under any of its names.
    assert ChatHuggingFaceInference(llm=llm, max_tokens=3).max_new_tokens == 3
    assert ChatHuggingFaceInference(llm=llm, endpoint_url=server.url + "/v1").endpoint_url == (
        server.url + "/v1"
    )


def test_llm_must_be_an_hfrag_llm() -> None:
    from hfrag.langchain import ChatHuggingFaceInference

    with pytest.raises(ConfigurationError, match="llm= takes an hfrag LLM"):
        ChatHuggingFaceInference(llm=object())
    with pytest.raises(ConfigurationError, match="llm: not a setting of this class"):
        HuggingFaceInferenceEmbeddings(model="a/b", llm=object())


@pytest.mark.parametrize("value", [True, False])
def test_is_chat_model_is_refused_naming_task(value: bool) -> None:
    from hfrag.llama_index import HuggingFaceInferenceLLM

    with pytest.raises(ConfigurationError, match="task='text-generation' sends them to TGI"):
        HuggingFaceInferenceLLM(model="a/b", is_chat_model=value)
