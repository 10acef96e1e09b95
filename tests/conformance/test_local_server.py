"""hfrag's own server answers in the shapes the recordings show (so the rest of the suite, which
runs against it, meets real shapes too): the same status, body keys and structure."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import httpx
import numpy as np

from hfrag.server import ServerConfig
from hfrag.server.testing import ServerHandle
from hfrag.tasks import GenerationOptions, TextGenerationClient
from tests.conformance.test_feature_extraction import ONE_STRING, TWO_TEXTS
from tests.conformance.test_text_generation import FLAN_LARGE

BASE = "/hf-inference/models"


def _nesting(value: object) -> int:
    depth = 0
    while isinstance(value, list):
        value, depth = value[0], depth + 1
    return depth


def test_token_level_feature_extraction_has_the_recorded_nesting(server: ServerHandle) -> None:
    path = f"{server.url}{BASE}/hfrag/hash-embed-tokens/pipeline/feature-extraction"
    listed = httpx.post(path, json={"inputs": ["Hi", "Hey"]}).json()
    single = httpx.post(path, json={"inputs": "Hi, who are you?"}).json()
    assert _nesting(listed) == _nesting(TWO_TEXTS.answer_json()) == 4
    assert _nesting(single) == _nesting(ONE_STRING.answer_json()) == 3
    assert [len(item) for item in listed] == [1, 1]  # the per-input axis of one
    assert len(single) == 1
    np.testing.assert_array_equal(np.asarray(listed[0][0]).shape[1:], (384,))


REFUSED = ("return_full_text", "stop", "details")


def _pipeline_model_config() -> ServerConfig:
    """The default server with its generator renamed t/pipeline-gen and refusing REFUSED, as
    the router does for google/flan-t5-large."""
    config = ServerConfig()
    models = [
        dataclasses.replace(m, name="t/pipeline-gen", unused_kwargs=REFUSED)
        if m.kind == "generate"
        else m
        for m in config.models
    ]
    return dataclasses.replace(config, models=models)


def test_a_pipeline_model_refuses_parameters_as_the_router_does(
    make_server: Callable[..., ServerHandle],
) -> None:
    srv = make_server(_pipeline_model_config())
    recorded_body = FLAN_LARGE[0].request_json()
    r = httpx.post(f"{srv.url}{BASE}/t/pipeline-gen", json=recorded_body)
    assert r.status_code == FLAN_LARGE[0].status == 400
    recorded = FLAN_LARGE[0].answer_json()
    assert r.json().keys() == recorded.keys()
    # Word for word, the names listed in the body's order (the real server's order is its own).
    names = str([k for k in recorded_body["parameters"] if k in REFUSED])
    expected = {
        key: value.replace(str(list(REFUSED)), names)
        if isinstance(value, str)
        else [v.replace(str(list(REFUSED)), names) for v in value]
        for key, value in recorded.items()
    }
    assert r.json() == expected
    client = TextGenerationClient(
        model="t/pipeline-gen",
        router_url=srv.url,
        task="text-generation",
        options=GenerationOptions(max_new_tokens=5, stop=["zzz"]),
    )
    assert isinstance(client.generate("How are you today?").text, str)
    assert srv.counters.bodies[-1]["parameters"].keys().isdisjoint(REFUSED)


def test_a_stream_from_a_pipeline_model_is_retried_without_the_refused_parameters(
    make_server: Callable[..., ServerHandle],
) -> None:
    srv = make_server(_pipeline_model_config())
    client = TextGenerationClient(
        model="t/pipeline-gen",
        router_url=srv.url,
        task="text-generation",
        options=GenerationOptions(max_new_tokens=5, stop=["zzz"]),
    )
    chunks = list(client.stream("How are you today?"))
    assert chunks  # the retried stream answered
    first, retry = srv.counters.bodies[-2:]
    assert set(REFUSED) <= first["parameters"].keys()
    assert retry["parameters"].keys().isdisjoint(REFUSED)
    assert retry["stream"] is True
