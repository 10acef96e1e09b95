"""Input and configuration checks: refused before anything is sent, with hfrag's own errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hfrag.errors import ConfigurationError, InputError
from hfrag.server.testing import ServerHandle
from hfrag.tasks import EmbeddingOptions, EmbeddingsClient, transport_config
from hfrag.tasks.embeddings import check_texts
from hfrag.transport import RetryPolicy, Secret, TransportConfig
from tests.reliability.classes import INPUTS, QUERY, RERANK, SUBJECTS, Subject, _lc_docs, close
from tests.reliability.rawserver import RawServer, embeddings

NAN, INF = float("nan"), float("inf")


@pytest.fixture
def client(raw_server: RawServer) -> EmbeddingsClient:
    raw_server.route("/embed", embeddings())
    return EmbeddingsClient(endpoint_url=raw_server.url + "/embed", max_retries=0)


def _embed(mode: str, client: EmbeddingsClient, texts: Any, **kw: Any) -> Any:
    if mode == "sync":
        return client.embed(texts, **kw)
    return asyncio.run(client.aembed(texts, **kw))


# --- texts ---


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_lone_surrogates_are_refused_before_sending(
    raw_server: RawServer, client: EmbeddingsClient, mode: str
) -> None:
    texts = ["fine", "bad \udcff byte", "also fine", "\ud800"]
    with pytest.raises(InputError, match="UTF-8") as info:
        _embed(mode, client, texts)
    assert info.value.positions == (1, 3)
    assert "1, 3" in str(info.value)
    assert raw_server.stats.requests == []


def test_a_surrogate_query_is_refused(raw_server: RawServer, client: EmbeddingsClient) -> None:
    with pytest.raises(InputError):
        client.embed_query("\udc80")
    assert raw_server.stats.requests == []


@pytest.mark.parametrize(
    "texts",
    [{"a", "b"}, frozenset({"a"}), {"a": 1, "b": 2}, {"a": 1}.keys(), (t for t in ["a"]), 3, None],
    ids=["set", "frozenset", "dict", "keys", "generator", "int", "none"],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_unordered_or_non_sequence_inputs_are_refused(
    raw_server: RawServer, client: EmbeddingsClient, mode: str, texts: Any
) -> None:
    with pytest.raises(TypeError, match="list of strings"):
        _embed(mode, client, texts)
    assert raw_server.stats.requests == []


def test_ordered_sequences_are_accepted(client: EmbeddingsClient) -> None:
    import numpy as np

    assert client.embed(("a", "b")).shape == (2, 4)
    assert client.embed(np.array(["a", "b", "c"])).shape == (3, 4)
    assert check_texts(["x"]) == ["x"]  # still importable from its old home


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("size", [0, -1, 2.5, True, "4"])
def test_a_per_call_batch_size_is_checked(
    raw_server: RawServer, client: EmbeddingsClient, mode: str, size: Any
) -> None:
    with pytest.raises(ConfigurationError, match="batch_size"):
        _embed(mode, client, ["a"], batch_size=size)
    assert raw_server.stats.requests == []


# --- configuration ---

BAD_CLIENT_ARGS = [
    ({"timeout": NAN}, "timeout"),
    ({"timeout": INF}, "timeout"),
    ({"timeout": "30"}, "timeout"),
    ({"timeout": True}, "timeout"),
    ({"max_retries": INF}, "max_retries"),
    ({"max_retries": 2.5}, "max_retries"),
    ({"max_retries": True}, "max_retries"),
    ({"max_retry_wait": NAN}, "max_retry_wait"),
    ({"max_retry_wait": INF}, "max_retry_wait"),
    ({"deadline": NAN}, "deadline"),
    ({"deadline": INF}, "deadline"),
    ({"deadline": 0}, "deadline"),
    ({"wait_for_model": 1}, "wait_for_model"),
    ({"use_cache": "false"}, "use_cache"),
    ({"headers": [("a", "b")]}, "headers"),
    ({"headers": {"X-A": 1}}, "header"),
    ({"headers": {"bad name": "v"}}, "header name"),
    ({"bill_to": "org\r\nX-Evil: 1"}, "bill_to"),
    ({"token": 123}, "token"),
    ({"max_response_bytes": 0}, "max_response_bytes"),
    ({"max_response_bytes": 1.5}, "max_response_bytes"),
]

BAD_OPTIONS = [
    ({"batch_size": 2.5}, "batch_size"),
    ({"batch_size": 2.0}, "batch_size"),
    ({"batch_size": True}, "batch_size"),
    ({"batch_size": 0}, "batch_size"),
    ({"max_concurrency": INF}, "max_concurrency"),
    ({"dimensions": 3.0}, "dimensions"),
    ({"normalize": 1}, "normalize"),
    ({"truncate": "yes"}, "truncate"),
    ({"show_progress": 1}, "show_progress"),
    ({"pooling": "max"}, "pooling"),
    ({"truncation_direction": "up"}, "truncation_direction"),
    ({"prompt_name": 5}, "prompt_name"),
    ({"query_instruction": "\udcff"}, "query_instruction"),
]


@pytest.mark.parametrize(("kwargs", "name"), BAD_CLIENT_ARGS)
def test_bad_connection_arguments_fail_at_construction(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        EmbeddingsClient(endpoint_url="http://127.0.0.1:9/embed", **kwargs)
    with pytest.raises(ConfigurationError, match=name):
        transport_config(**kwargs)


@pytest.mark.parametrize(("kwargs", "name"), BAD_OPTIONS)
def test_bad_embedding_options_fail_at_construction(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        EmbeddingOptions(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_retries": INF}, {"max_wait": NAN}, {"backoff_base": -1}, {"deadline": INF}],
)
def test_retry_policy_is_checked(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**kwargs)


def test_transport_config_built_directly_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        TransportConfig(timeout=NAN)
    with pytest.raises(ConfigurationError, match="max_connections"):
        TransportConfig(max_connections=0)


def test_good_values_still_work() -> None:
    import numpy as np

    config = transport_config(
        timeout=np.int64(5), max_retries=np.int64(2), deadline=30, headers={"X-A": "b"}
    )
    assert config.timeout == 5
    assert config.retry.max_retries == 2
    assert EmbeddingOptions(batch_size=np.int64(8)).batch_size == 8


# --- credentials that cannot be sent ---

PLANTED = "hf_PLANTEDsecret0123"


@pytest.mark.parametrize(
    "token",
    [
        PLANTED + "\r\nX-Injected: 1",
        PLANTED + "\nmore",
        PLANTED + "\x00",
        PLANTED + "\x7f",
        PLANTED + "é",
        PLANTED + "\u2028x",
    ],
    ids=["crlf", "lf", "nul", "del", "non-ascii", "line-separator"],
)
@pytest.mark.parametrize("as_secret", [False, True])
def test_unsendable_tokens_are_refused_without_echo(token: str, as_secret: bool) -> None:
    given: Any = Secret(token) if as_secret else token
    with pytest.raises(ConfigurationError, match="token") as info:
        EmbeddingsClient(endpoint_url="http://127.0.0.1:9/embed", token=given)
    assert PLANTED not in str(info.value)
    assert PLANTED not in repr(info.value)


@pytest.mark.parametrize("value", [PLANTED + "\r\n", "a\nb" + PLANTED, PLANTED + "ü"])
def test_unsendable_header_values_are_refused_without_echo(value: str) -> None:
    with pytest.raises(ConfigurationError, match="X-Api-Key") as info:
        transport_config(headers={"X-Api-Key": value})
    assert PLANTED not in str(info.value)


def test_token_whitespace_is_stripped(raw_server: RawServer, client: EmbeddingsClient) -> None:
    stripped = EmbeddingsClient(
        endpoint_url=raw_server.url + "/embed", token=f"  {PLANTED}\n", max_retries=0
    )
    stripped.embed(["a"])
    assert raw_server.stats.requests[-1].headers["authorization"] == f"Bearer {PLANTED}"
    config = TransportConfig(token=Secret(f"\t{PLANTED} "))
    assert config.token is not None
    assert config.token.get_secret_value() == PLANTED


def test_unsendable_ambient_token_is_refused_without_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    from hfrag.transport import Request

    monkeypatch.setenv("HF_TOKEN", PLANTED + "\u00e9")
    with pytest.raises(ConfigurationError, match="ambient") as info:
        TransportConfig().headers_for(Request("https://router.huggingface.co/x"))
    assert PLANTED not in str(info.value)


# --- the adapters: the same checks, inside pydantic's ValidationError ---


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": NAN},
        {"max_retry_wait": INF},
        {"deadline": NAN},
        {"max_retries": INF},
        {"batch_size": 2.5},
        {"headers": {"X-Api-Key": PLANTED + "\r\nX-Evil: 1"}},
        {"token": PLANTED + "\nx"},
        {"api_key": PLANTED + "\u00e9"},
    ],
)
@pytest.mark.parametrize("framework", ["langchain", "llama_index"])
def test_adapters_refuse_bad_settings_without_echo(framework: str, kwargs: dict[str, Any]) -> None:
    if framework == "langchain":
        from hfrag.langchain import HuggingFaceInferenceEmbeddings as Adapter
    else:
        from hfrag.llama_index import HuggingFaceInferenceEmbedding as Adapter  # type: ignore[assignment]
    with pytest.raises(ValueError) as info:
        Adapter(endpoint_url="http://127.0.0.1:9/embed", **kwargs)
    assert PLANTED not in str(info.value)
    assert PLANTED not in repr(info.value)


# --- values assigned after construction ---

#: kind -> (field, bad value) refused when assigned to an adapter of that kind.
ASSIGNED: dict[str, list[tuple[str, Any]]] = {
    "embed": [("batch_size", 0), ("max_retries", -1), ("timeout", "soon")],
    "rerank": [("batch_size", 0), ("max_retries", -1), ("timeout", NAN)],
    "generate": [("temperature", "hot"), ("max_retries", -1), ("timeout", INF)],
}
ADAPTERS = [s for s in SUBJECTS if s.name.startswith(("lc.", "li."))]
ASSIGN_CASES = [(s, f, v) for s in ADAPTERS for f, v in ASSIGNED[s.kind]]
ASSIGN_CASES += [(s, "top_n", 0) for s in ADAPTERS if s.name.endswith(("Reranker", "Rerank"))]


@pytest.mark.parametrize(
    ("subject", "field", "value"),
    ASSIGN_CASES,
    ids=[f"{s}-{f}={v!r}" for s, f, v in ASSIGN_CASES],
)
def test_a_bad_value_assigned_to_an_adapter_is_refused_there(
    server: ServerHandle, subject: Subject, field: str, value: Any
) -> None:
    obj = subject.build(server.url, max_retries=0)
    try:
        before = getattr(obj, field)
        with pytest.raises(ConfigurationError, match=field):
            setattr(obj, field, value)
        assert getattr(obj, field) == before  # the old value stays, not the refused one
        assert subject.call(obj, INPUTS[subject.kind]) is not None  # and the adapter works
    finally:
        close(obj)


def test_a_good_value_assigned_to_an_adapter_is_used(server: ServerHandle) -> None:
    from hfrag.langchain import HuggingFaceInferenceReranker

    reranker = HuggingFaceInferenceReranker(model=RERANK, router_url=server.url)
    docs = _lc_docs(["alpha", "beta", "gamma"])
    assert len(reranker.compress_documents(docs, QUERY)) == 3
    reranker.top_n = 1
    assert len(reranker.compress_documents(docs, QUERY)) == 1
