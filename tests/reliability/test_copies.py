"""Copies and pickles of every public class: what each carries, and that the copy works.

Policy: a ``Secret`` pickles with its value (handing one over is the explicit choice; its repr
stays masked). Clients, adapters and transports copy and pickle into fresh working objects (no
pool, lock or loop-bound task is copied). A pickle carries the token only when it was given as a
``Secret``; copies in the same process keep it.
"""

from __future__ import annotations

import asyncio
import copy
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from hfrag.langchain import HuggingFaceInferenceEmbeddings
from hfrag.llama_index import HuggingFaceInferenceEmbedding
from hfrag.tasks import EmbeddingsClient
from hfrag.transport import AsyncTransport, Request, Secret, SyncTransport, TransportConfig
from tests.tasks.conftest import expected

TOKEN = "hf_PLANTEDpickleTOKEN42"


def _client(local: Any, token: Any) -> EmbeddingsClient:
    return EmbeddingsClient(endpoint_url=local.url + "/embed", token=token, max_retries=0)


def _lc(local: Any, token: Any) -> HuggingFaceInferenceEmbeddings:
    return HuggingFaceInferenceEmbeddings(endpoint_url=local.url + "/embed", token=token)


def _li(local: Any, token: Any) -> HuggingFaceInferenceEmbedding:
    return HuggingFaceInferenceEmbedding(endpoint_url=local.url + "/embed", token=token)


def _embed(obj: Any, text: str) -> np.ndarray:
    if isinstance(obj, EmbeddingsClient):
        return obj.embed([text])
    if isinstance(obj, HuggingFaceInferenceEmbeddings):
        return np.asarray(obj.embed_documents([text]))
    return np.asarray(obj.get_text_embedding_batch([text]))


MAKERS = {"client": _client, "langchain": _lc, "llama_index": _li}


def _sent_token(local: Any) -> str | None:
    return local.counters.headers[-1].get("authorization")


@pytest.mark.parametrize("kind", MAKERS)
@pytest.mark.parametrize("copier", [copy.deepcopy, copy.copy], ids=["deepcopy", "copy"])
def test_copies_work_and_keep_the_token(
    local: Any, kind: str, copier: Callable[[Any], Any]
) -> None:
    original = MAKERS[kind](local, TOKEN)
    _embed(original, "warm")  # live pools and an I/O loop exist now
    clone = copier(original)
    np.testing.assert_allclose(_embed(clone, "copy"), expected(local, ["copy"]), atol=1e-6)
    assert _sent_token(local) == f"Bearer {TOKEN}"
    np.testing.assert_allclose(_embed(original, "again"), expected(local, ["again"]), atol=1e-6)


@pytest.mark.parametrize("kind", ["langchain", "llama_index"])
def test_model_copy_deep_works(local: Any, kind: str) -> None:
    original = MAKERS[kind](local, TOKEN)
    _embed(original, "warm")
    clone = original.model_copy(deep=True)
    np.testing.assert_allclose(_embed(clone, "copy"), expected(local, ["copy"]), atol=1e-6)
    assert _sent_token(local) == f"Bearer {TOKEN}"


@pytest.mark.parametrize("kind", MAKERS)
def test_pickles_work_and_leave_a_string_token_out(local: Any, kind: str) -> None:
    original = MAKERS[kind](local, TOKEN)
    _embed(original, "warm")
    data = pickle.dumps(original)
    assert TOKEN.encode() not in data
    back = pickle.loads(data)
    np.testing.assert_allclose(_embed(back, "pickled"), expected(local, ["pickled"]), atol=1e-6)
    assert _sent_token(local) is None  # a local endpoint gets no credential now
    assert _sent_token(local) is None
    np.testing.assert_allclose(_embed(original, "again"), expected(local, ["again"]), atol=1e-6)
    assert _sent_token(local) == f"Bearer {TOKEN}"


@pytest.mark.parametrize("kind", MAKERS)
def test_a_token_given_as_secret_travels_with_the_pickle(local: Any, kind: str) -> None:
    original = MAKERS[kind](local, Secret(TOKEN))
    _embed(original, "warm")
    back = pickle.loads(pickle.dumps(original))
    _embed(back, "pickled")
    assert _sent_token(local) == f"Bearer {TOKEN}"
    assert TOKEN not in repr(back)


def test_secret_pickles_with_its_value_and_stays_masked() -> None:
    secret = Secret(TOKEN)
    back = pickle.loads(pickle.dumps(secret))
    assert back == secret
    assert back.get_secret_value() == TOKEN
    assert TOKEN not in repr(back)
    assert copy.deepcopy(secret) == secret


@pytest.mark.parametrize("cls", [SyncTransport, AsyncTransport])
@pytest.mark.parametrize("copier", [pickle, copy], ids=["pickle", "deepcopy"])
def test_transports_copy_and_pickle_into_fresh_drivers(local: Any, cls: type, copier: Any) -> None:
    transport = cls(TransportConfig(token=Secret(TOKEN), headers={"X-A": "b"}, timeout=10))
    request = Request(local.url + "/embed", json={"inputs": ["t"]})

    def call(t: Any) -> Any:
        return t.request(request) if cls is SyncTransport else asyncio.run(t.request(request))

    call(transport)
    clone = pickle.loads(pickle.dumps(transport)) if copier is pickle else copy.deepcopy(transport)
    assert clone._client is None  # no pool copied
    np.testing.assert_allclose(call(clone), expected(local, ["t"]), atol=1e-6)
    assert _sent_token(local) == f"Bearer {TOKEN}"
    assert local.counters.headers[-1]["x-a"] == "b"
    clone.close()
    transport.close()


def test_transport_config_pickles_without_a_string_token() -> None:
    from hfrag.tasks import transport_config

    config = transport_config(token=TOKEN, headers={"X-A": "b"})
    back = pickle.loads(pickle.dumps(config))
    assert back.token is None
    assert dict(back.headers) == {"X-A": "b"}
    assert copy.deepcopy(config).token == config.token
