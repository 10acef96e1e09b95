"""Errors say the cause: each case against the local server (or, for hosts a test cannot reach,
the pure advice function), with the message a user reads."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest

from hfrag.errors import (
    CONNECTION_REFUSED,
    NAME_NOT_RESOLVED,
    AuthenticationError,
    BatchTooLargeError,
    ConfigurationError,
    HfragError,
    InferenceConnectionError,
    InvalidRequestError,
    NotFoundError,
)
from hfrag.server import ServerConfig
from hfrag.server.testing import CannedResponse, ServerHandle
from hfrag.tasks import EmbeddingOptions, EmbeddingsClient
from hfrag.transport import RetryPolicy
from hfrag.transport.advice import advise, defined_prompts
from hfrag.transport.retry import REFUSED_BUDGET

PLANTED = "hf_PLANTEDsecretTOKEN0123456789"
MODEL = "hfrag/hash-embed"


def client(**kwargs: Any) -> EmbeddingsClient:
    kwargs.setdefault("max_retries", 2)
    return EmbeddingsClient(**kwargs)


def free_port() -> int:
    with socket.socket() as sock:  # a port that was just free: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- prompt names ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [413, 422])
@pytest.mark.parametrize("layout", ["router", "endpoint"])
def test_unknown_prompt_name_names_the_prompt_and_the_defined_ones(
    make_server: Callable[..., ServerHandle], status: int, layout: str
) -> None:
    srv = make_server(ServerConfig(validation_status=status))
    target = {"model": MODEL, "router_url": srv.url} if layout == "router" else {}
    target = target or {"endpoint_url": srv.url}
    emb = client(**target, options=EmbeddingOptions(query_prompt_name="qury"))
    with pytest.raises(InvalidRequestError) as info:
        emb.embed_query("where is Paris?")
    error = info.value
    assert not isinstance(error, BatchTooLargeError)  # never split: a smaller batch cannot help
    assert error.status == status
    text = str(error)
    assert "prompt_name='qury' is not a prompt of this model" in text
    assert "the model defines 'query', 'document'" in text
    assert srv.counters.total("/embed" if layout == "endpoint" else None) <= 1


def test_unknown_prompt_on_a_model_without_prompts(make_server: Callable[..., Any]) -> None:
    from hfrag.server import HashingBackend, ModelSpec

    srv = make_server(ServerConfig(models=[ModelSpec("a/plain", "embed", HashingBackend())]))
    emb = client(endpoint_url=srv.url, options=EmbeddingOptions(prompt_name="query"))
    with pytest.raises(InvalidRequestError, match="the model defines no prompts"):
        emb.embed(["a text", "another"])


def test_defined_prompts_reads_tei_wording() -> None:
    message = (
        "`default-prompt-name` is set to `x` but it was not found in the Sentence Transformers "
        'prompts. Available prompts: ["query", "passage"]'
    )
    assert defined_prompts(message) == ["query", "passage"]
    assert defined_prompts("no list here") is None


# --- 404 / 405 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "status"), [("/embeddings/v2", 404), ("/health", 405)])
def test_wrong_endpoint_path_gives_endpoint_advice(
    server: ServerHandle, path: str, status: int
) -> None:
    with pytest.raises(NotFoundError) as info:
        client(endpoint_url=server.url + path).embed(["hello"])
    text = str(info.value)
    assert info.value.status == status
    assert f"hfrag sent POST {path} to {server.url}" in text
    assert "/embed, /rerank, /predict" in text
    assert "/generate_stream" in text
    assert f"The base URL ({server.url}) is enough" in text
    assert "model id" not in text  # router advice is for router targets only


def test_unknown_model_on_the_router_gives_router_advice(server: ServerHandle) -> None:
    with pytest.raises(NotFoundError) as info:
        client(model="org/missing-model", router_url=server.url).embed(["hello"])
    text = str(info.value)
    assert "Check the model id" in text
    assert "Routes by server type" not in text


# --- 401 / 403 ---------------------------------------------------------------------------------


@pytest.fixture
def locked(make_server: Callable[..., ServerHandle]) -> ServerHandle:
    return make_server(ServerConfig(api_key="the-right-key"))


def test_ambient_token_withheld_from_a_custom_endpoint_says_so(
    locked: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", PLANTED)
    with pytest.raises(AuthenticationError) as info:
        client(endpoint_url=locked.url).embed(["hello"])
    text = str(info.value)
    assert "hfrag sent no credential: HF_TOKEN is set" in text
    assert "only to Hugging Face hosts" in text
    assert "Pass token=..." in text
    assert "fine-grained" not in text
    assert PLANTED not in text


def test_no_credential_at_all(locked: ServerHandle) -> None:
    with pytest.raises(AuthenticationError) as info:
        client(endpoint_url=locked.url).embed(["hello"])
    text = str(info.value)
    assert "hfrag sent no credential to 127.0.0.1" in text
    assert "HF_TOKEN" not in text
    assert "fine-grained" not in text


def test_wrong_explicit_token_says_it_was_sent(locked: ServerHandle) -> None:
    with pytest.raises(AuthenticationError) as info:
        client(endpoint_url=locked.url, token=PLANTED).embed(["hello"])
    text = str(info.value)
    assert "hfrag sent the credential given as token=..." in text
    assert "--api-key" in text
    assert "fine-grained" not in text
    assert PLANTED not in text


def test_hugging_face_hosts_get_the_fine_grained_hint() -> None:
    url = "https://router.huggingface.co/hf-inference/models/a/b/pipeline/feature-extraction"
    error = AuthenticationError("Invalid credentials", status=401, url=url)
    common = {"method": "POST", "url": url, "body": {}, "target": None, "attempts": 1}
    sent = advise(
        error, headers={"authorization": "x"}, explicit_token=False, elapsed=0.1, **common
    )
    assert "was refused" in str(sent)
    assert "'Make calls to Inference Providers' permission" in str(sent)
    unsent = advise(error, headers={}, explicit_token=False, elapsed=0.1, **common)
    assert "No token was sent: set HF_TOKEN" in str(unsent)
    assert "fine-grained" in str(unsent)


# --- connection failures -----------------------------------------------------------------------


def test_name_that_does_not_resolve_is_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="hfrag")
    with pytest.raises(InferenceConnectionError) as info:
        client(endpoint_url="http://no-such-host.invalid:8080").embed(["hello"])
    error = info.value
    assert error.error_type == NAME_NOT_RESOLVED
    assert not error.retryable
    assert error.attempts == 1
    assert "the host name 'no-such-host.invalid' does not resolve (DNS)" in str(error)
    assert "hfrag gave up after 1 attempt in" in str(error)
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]


def test_refused_connection_is_retried_within_its_budget_and_says_how_long() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(InferenceConnectionError) as info:
        client(endpoint_url=url, max_retries=10).embed(["hello"])
    error = info.value
    assert error.error_type == CONNECTION_REFUSED
    assert error.attempts is not None
    assert 1 < error.attempts < 11
    assert error.elapsed is not None
    # Every retry starts within the budget; the last attempt's own few milliseconds may end
    # past it, so the bound checked here is loose (the rule itself is tested purely below).
    assert error.elapsed < REFUSED_BUDGET + 1.0
    text = str(error)
    assert "refused, nothing is listening there" in text
    assert f"hfrag gave up after {error.attempts} attempts in" in text
    assert f"retried for {REFUSED_BUDGET:g} s at most" in text


def test_refused_budget_is_a_pure_rule() -> None:
    refused = InferenceConnectionError("x", error_type=CONNECTION_REFUSED)
    dropped = InferenceConnectionError("x")
    policy = RetryPolicy(max_retries=10, backoff_base=1.0, backoff_max=1.0)
    assert policy.next_wait(0, refused, 0.0) is not None
    assert policy.next_wait(0, refused, REFUSED_BUDGET - 0.1) is None
    assert policy.next_wait(0, dropped, REFUSED_BUDGET - 0.1) is not None


def test_errors_survive_pickling_with_their_advice(locked: ServerHandle) -> None:
    import pickle

    with pytest.raises(AuthenticationError) as info:
        client(endpoint_url=locked.url).embed(["hello"])
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value)


def test_advice_is_given_once_even_for_batch_jobs(server: ServerHandle) -> None:
    server.script("/embed", CannedResponse(404, {"error": "nope"}))
    with pytest.raises(NotFoundError) as info:
        client(endpoint_url=server.url + "/embed").embed(["a", "b"])
    assert str(info.value).count("Routes by server type") == 1
    assert info.value.positions == (0, 1)


# --- configuration -----------------------------------------------------------------------------


def test_bad_router_url_in_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HFRAG_ROUTER_URL", "localhost:8080")
    with pytest.raises(ConfigurationError) as info:
        client(model=MODEL)
    assert "the environment variable HFRAG_ROUTER_URL must be an absolute" in str(info.value)
    assert isinstance(info.value, HfragError)
    assert isinstance(info.value, ValueError)
