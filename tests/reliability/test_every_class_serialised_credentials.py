"""Where a planted token may travel, for every public class: pickles, copies, framework
serialisation, and which hosts get the ambient token.

What hfrag documents (README "Credentials", ``transport/credentials.py``), and so what is tested:

- A token given as a plain string is left out of a pickle (the unpickled object follows the
  ambient-token rule); a token given as a ``Secret`` travels with the pickle (handing over a
  ``Secret`` is the explicit choice) yet stays masked in every text form.
- ``copy.deepcopy`` keeps the token (same process) and its repr shows none.
- LangChain ``dumps`` and LlamaIndex ``to_json``/``to_dict`` write no credential value.
- The ambient token (``HF_TOKEN``) goes only to Hugging Face's own https hosts: never to the local
  server, whether given as an endpoint URL or as a router; and it is sent to
  ``https://router.huggingface.co`` (reached here through a local proxy that plays that host:
  see ``hf_proxy``), so the "never sent" checks can fail.
"""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Iterator
from typing import Any

import pytest

from hfrag.errors import AuthenticationError
from hfrag.server.testing import ServerHandle, serve_in_thread
from hfrag.transport import Secret
from tests.adapters import PLANTED
from tests.llm import LLAMA, llm_config
from tests.reliability.classes import EMBED, INPUTS, RERANK, SUBJECTS, Subject, close
from tests.reliability.hf_proxy import HubProxy

pytestmark = pytest.mark.timeout(60)

BEARER = f"Bearer {PLANTED}"
LANGCHAIN = [s for s in SUBJECTS if s.name.startswith("lc.")]
LLAMA_INDEX = [s for s in SUBJECTS if s.name.startswith("li.")]
MODELS = {"embed": EMBED, "rerank": RERANK, "generate": LLAMA}
AMBIENT = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


@pytest.fixture(autouse=True)
def _no_ambient_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """No token from the environment unless a test plants one."""
    for name in AMBIENT:
        monkeypatch.delenv(name, raising=False)


def _authorization(server: ServerHandle) -> str | None:
    return server.counters.headers[-1].get("authorization")


def _text_forms(obj: Any) -> list[str]:
    return [repr(obj), str(obj)]


# -- pickles and copies --------------------------------------------------------------------------


@pytest.mark.parametrize("subject", SUBJECTS, ids=str)
def test_a_string_token_is_left_out_of_a_pickle(server: ServerHandle, subject: Subject) -> None:
    obj = subject.build(server.url, token=PLANTED, max_retries=0)
    back = None
    try:
        subject.call(obj, INPUTS[subject.kind])  # live connections exist now
        assert _authorization(server) == BEARER  # it was there to leak
        data = pickle.dumps(obj)
        assert PLANTED.encode() not in data
        back = pickle.loads(data)
        subject.call(back, INPUTS[subject.kind])  # a working copy, with no credential
        assert _authorization(server) is None
        subject.call(obj, INPUTS[subject.kind])  # the original keeps its own
        assert _authorization(server) == BEARER
    finally:
        close(obj)
        if back is not None:
            close(back)


@pytest.mark.parametrize("subject", SUBJECTS, ids=str)
def test_a_secret_token_travels_with_the_pickle_and_stays_masked(
    server: ServerHandle, subject: Subject
) -> None:
    obj = subject.build(server.url, token=Secret(PLANTED), max_retries=0)
    back = pickle.loads(pickle.dumps(obj))
    try:
        subject.call(back, INPUTS[subject.kind])
        assert _authorization(server) == BEARER
        for text in _text_forms(back):
            assert PLANTED not in text
    finally:
        close(obj)
        close(back)


@pytest.mark.parametrize("subject", SUBJECTS, ids=str)
def test_a_deep_copy_keeps_the_token_and_shows_none(server: ServerHandle, subject: Subject) -> None:
    obj = subject.build(server.url, token=PLANTED, max_retries=0)
    clone = None
    try:
        subject.call(obj, INPUTS[subject.kind])
        clone = copy.deepcopy(obj)
        for text in _text_forms(clone) + _text_forms(obj):
            assert PLANTED not in text
        subject.call(clone, INPUTS[subject.kind])
        assert _authorization(server) == BEARER  # a copy in this process keeps it
    finally:
        close(obj)
        if clone is not None:
            close(clone)


# -- framework serialisation ---------------------------------------------------------------------


def _langchain_forms(obj: Any) -> list[str]:
    from langchain_core.load import dumps

    text = dumps(obj)
    data = json.loads(text)
    if data["type"] == "constructor":  # serialisable: the token is written as a secret's id
        assert data["kwargs"]["token"]["type"] == "secret"
    else:  # chat models and LLMs are not: LangChain writes their repr
        assert data["type"] == "not_implemented"
    return [text, dumps(obj, pretty=True)]


def _llama_index_forms(obj: Any) -> list[str]:
    return [obj.to_json(), json.dumps(obj.to_dict(), default=repr)]


@pytest.mark.parametrize("token", [PLANTED, Secret(PLANTED)], ids=["str", "Secret"])
@pytest.mark.parametrize("subject", LANGCHAIN + LLAMA_INDEX, ids=str)
def test_framework_serialisation_writes_no_token(
    server: ServerHandle, subject: Subject, token: Any
) -> None:
    """LangChain ``dumps`` (plain and pretty), LlamaIndex ``to_json`` and ``to_dict``, and
    pydantic's dumps of both."""
    obj = subject.build(server.url, token=token, max_retries=0)
    try:
        subject.call(obj, INPUTS[subject.kind])
        forms = _langchain_forms if subject in LANGCHAIN else _llama_index_forms
        for text in [*forms(obj), obj.model_dump_json(), repr(obj.model_dump())]:
            assert PLANTED not in text
    finally:
        close(obj)


# -- the ambient token ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rerank_endpoint() -> Iterator[ServerHandle]:
    """A local TEI re-ranker (the re-ranking classes check ``/info`` for one)."""
    with serve_in_thread(llm_config(primary=RERANK)) as srv:
        yield srv


def _endpoint(server: ServerHandle, reranker: ServerHandle, kind: str) -> str:
    return {
        "embed": server.url + "/embed",
        "rerank": reranker.url + "/rerank",
        "generate": server.url,
    }[kind]


@pytest.mark.parametrize("layout", ["endpoint-url", "local-router"])
@pytest.mark.parametrize("subject", SUBJECTS, ids=str)
def test_the_ambient_token_never_goes_to_a_local_server(
    server: ServerHandle,
    rerank_endpoint: ServerHandle,
    subject: Subject,
    layout: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_TOKEN", PLANTED)
    rerank_endpoint.reset()
    if layout == "endpoint-url":
        url = _endpoint(server, rerank_endpoint, subject.kind)
        obj = subject.make(endpoint_url=url, max_retries=0)
    else:
        obj = subject.build(server.url, max_retries=0)
    try:
        subject.call(obj, INPUTS[subject.kind])
        seen = server.counters.headers + rerank_endpoint.counters.headers
        assert seen, "no request arrived: the check proves nothing"
        assert not [h for h in seen if PLANTED in str(h)]
    finally:
        close(obj)


@pytest.fixture(scope="module")
def _module_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProxy]:
    with HubProxy(tmp_path_factory.mktemp("hf-proxy"), status=401) as proxy:
        yield proxy


@pytest.fixture
def hf_router(_module_proxy: HubProxy, monkeypatch: pytest.MonkeyPatch) -> HubProxy:
    """``https://router.huggingface.co`` as a client reaches it through ``HTTPS_PROXY``: every
    request answered 401, its headers recorded."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HFRAG_ROUTER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", _module_proxy.url)
    monkeypatch.setenv("SSL_CERT_FILE", str(_module_proxy.ca_file))
    _module_proxy.requests.clear()
    _module_proxy.errors.clear()
    return _module_proxy


@pytest.mark.parametrize("subject", SUBJECTS, ids=str)
def test_the_ambient_token_goes_to_the_hugging_face_router(
    hf_router: HubProxy, subject: Subject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", PLANTED)
    obj = subject.make(model=MODELS[subject.kind], max_retries=0)  # the default router
    try:
        with pytest.raises(AuthenticationError) as info:
            subject.call(obj, INPUTS[subject.kind])
        assert PLANTED not in str(info.value)
        assert hf_router.requests, hf_router.errors
        for request in hf_router.requests:
            assert request.tunnel == "router.huggingface.co:443"
            assert request.headers.get("authorization") == BEARER
    finally:
        close(obj)


EMBEDDING_SUBJECTS = [s for s in SUBJECTS if s.kind == "embed"]


def _with_provider(subject: Subject, **provider: str) -> Any:
    if subject.name == "EmbeddingsClient":
        from hfrag.tasks import EmbeddingOptions

        return subject.make(model=EMBED, max_retries=0, options=EmbeddingOptions(**provider))
    return subject.make(model=EMBED, max_retries=0, **provider)


#: Provider settings -> (host reached, path without the query, whether a query follows): a
#: provider's own path on the router, and the Hub's model API that provider="auto" asks first.
PROVIDER_ROUTES = {
    "provider-path": (
        {"provider": "together", "provider_model": "org/embed-on-together"},
        ("router.huggingface.co:443", "/together/v1/embeddings", False),
    ),
    "hub-look-up": (
        {"provider": "auto"},
        ("huggingface.co:443", f"/api/models/{EMBED}", True),
    ),
}


@pytest.mark.parametrize("route", list(PROVIDER_ROUTES))
@pytest.mark.parametrize("subject", EMBEDDING_SUBJECTS, ids=str)
def test_the_ambient_token_goes_to_providers_and_the_hub(
    hf_router: HubProxy, subject: Subject, route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", PLANTED)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    settings, (tunnel, path, has_query) = PROVIDER_ROUTES[route]
    obj = _with_provider(subject, **settings)
    try:
        with pytest.raises(AuthenticationError) as info:
            subject.call(obj, INPUTS[subject.kind])
        assert PLANTED not in str(info.value)
        [request] = hf_router.requests
        assert request.tunnel == tunnel
        sent_path, _, query = request.path.partition("?")
        assert sent_path == path
        assert bool(query) == has_query
        assert request.headers.get("authorization") == BEARER
    finally:
        close(obj)
