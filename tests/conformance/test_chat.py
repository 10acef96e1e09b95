"""Chat completions: recorded answers of ten Inference Providers and TGI, through every class.

Recordings (see recordings/SOURCES.json):

- huggingface_hub's ``test_chat_completion_no_stream[P]`` and ``..._with_stream[P]`` for P in
  centml, cerebras, cohere, fireworks-ai, hf-inference, hyperbolic, nebius, novita, sambanova
  and together (2025): "What is deep learning?", whole and streamed (``max_tokens: 20``).
- DialoGPT-small on hf-inference (a non-TGI model behind TGI's chat route, 2025), TGI 1.4.3
  streaming without ``[DONE]`` (2024), a 401 from the router and TGI's plain-text 422 (axum's
  JSON rejection).

Each answer is checked against what the recording says (text, finish reason in OpenAI's words,
usage), read from the recorded JSON by :func:`~tests.conformance.chat_ways.recorded_whole` /
``recorded_stream``.

hfrag's request differs from the recorded ones; why the real router accepts hfrag's form:

- path and ``model``: hfrag posts every provider's chat to the router's
  ``/v1/chat/completions`` with ``"model": "{hub id}:{provider}"``, where the recordings used
  the provider's own route with its model id (``/cerebras/v1/chat/completions``,
  ``"llama-3.3-70b"``). The router resolves the provider server-side: huggingface_hub's
  ``AutoRouterConversationalTask`` (``_providers/_common.py`` at ee0a4510: "We let the Hugging
  Face router select the best provider ... the selection is done server-side") and the
  ``model:provider`` form of huggingface.js's snippets (huggingface/huggingface.js#1636,
  ``packages/inference/src/snippets/getInferenceSnippets.ts``). centml and cohere were recorded
  straight from the provider's host; through the router the provider's bytes are relayed.
- ``stream_options: {"include_usage": true}`` on streams: OpenAI's field, in TGI's schema
  (``router/src/lib.rs``, ``StreamOptions``); no recording shows a provider refusing it.
- ``stream: false`` left out of whole requests: OpenAI's and TGI's default.
"""

from __future__ import annotations

from typing import Any

import pytest

from hfrag.errors import AuthenticationError, InvalidRequestError
from hfrag.tasks import ChatClient
from tests.conformance.chat_ways import STREAMED, WHOLE, recorded_stream, recorded_whole
from tests.conformance.replay import Exchange, ReplayServer, cassette, differences

CHAT = "/v1/chat/completions"
#: provider -> the Hub model id the recording's provider model stands for (from the cassette's
#: Hub look-up; centml and cohere were recorded without one: their ids are the Hub's).
PROVIDERS = {
    "centml": "meta-llama/Llama-3.3-70B-Instruct",
    "cerebras": "meta-llama/Llama-3.3-70B-Instruct",
    "cohere": "CohereForAI/c4ai-command-r7b-12-2024",
    "fireworks-ai": "meta-llama/Llama-3.3-70B-Instruct",
    "hf-inference": "meta-llama/Llama-3.1-8B-Instruct",
    "hyperbolic": "meta-llama/Llama-3.2-3B-Instruct",
    "nebius": "meta-llama/Llama-3.1-8B-Instruct",
    "novita": "meta-llama/Llama-3.1-8B-Instruct",
    "sambanova": "meta-llama/Llama-3.1-8B-Instruct",
    "together": "meta-llama/Meta-Llama-3-8B-Instruct",
}
FINISH = {"eos_token": "stop"}  # TGI's word, in OpenAI's


def _provider(provider: str, stream: bool) -> Exchange:
    kind = "with_stream" if stream else "no_stream"
    return cassette(f"TestInferenceClient.test_chat_completion_{kind}[{provider},conversational]")[
        0
    ]


def _router(url: str, provider: str) -> dict[str, Any]:
    return {"model": PROVIDERS[provider], "router_url": url, "provider": provider}


def _expected_body_differences(
    recorded: dict[str, Any], sent: dict[str, Any], provider: str
) -> dict[str, tuple[Any, Any]]:
    model = f"{PROVIDERS[provider]}:{provider}"
    out: dict[str, tuple[Any, Any]] = {}
    if recorded.get("model") != model:
        out["model"] = (recorded.get("model"), model)
    if recorded.get("stream") is True:
        out["stream_options"] = (None, {"include_usage": True})
    else:
        out["stream"] = (False, None)
    return out


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("way", sorted(WHOLE))
def test_whole_answers_of_every_provider(replay: ReplayServer, way: str, provider: str) -> None:
    exchange = _provider(provider, stream=False)
    replay.serve(exchange, at=CHAT)
    messages = exchange.request_json()["messages"]
    got = WHOLE[way](_router(replay.url, provider), {}, messages, None, None)
    want = recorded_whole(exchange.answer_json())
    assert got.text == want.text
    assert got.finish_reason == FINISH.get(want.finish_reason or "", want.finish_reason)
    assert got.usage == want.usage
    (sent,) = replay.received
    assert sent.path == CHAT
    assert differences(exchange.request_json(), sent.json()) == _expected_body_differences(
        exchange.request_json(), sent.json(), provider
    )


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("way", sorted(STREAMED))
def test_streamed_answers_of_every_provider(replay: ReplayServer, way: str, provider: str) -> None:
    exchange = _provider(provider, stream=True)
    replay.serve(exchange, at=CHAT)
    messages = exchange.request_json()["messages"]
    options = {"max_new_tokens": 20}
    got = STREAMED[way](_router(replay.url, provider), options, messages, None, None)
    want = recorded_stream(exchange.events())
    assert got.text == want.text
    assert got.finish_reason == want.finish_reason == "length"
    assert got.usage == want.usage
    (sent,) = replay.received
    assert differences(exchange.request_json(), sent.json()) == _expected_body_differences(
        exchange.request_json(), sent.json(), provider
    )
    assert replay.writes > 3  # written in pieces, some cut inside a line


NON_TGI = cassette("TestInferenceClient.test_chat_completion_with_non_tgi")[0]
TGI_143_STREAM = cassette("InferenceClientVCRTest.test_chat_completion_with_stream")[0]
UNAUTHORIZED = cassette("TestInferenceClient.test_chat_completion_unprocessable_entity")[0]
PLAIN_422 = cassette("InferenceClientVCRTest.test_chat_completion_unprocessable_entity")[0]


@pytest.mark.parametrize("way", sorted(WHOLE))
def test_a_non_tgi_model_on_hf_inference(replay: ReplayServer, way: str) -> None:
    replay.serve(NON_TGI, at=CHAT)
    target = {
        "model": "microsoft/DialoGPT-small",
        "router_url": replay.url,
        "provider": "hf-inference",
    }
    got = WHOLE[way](target, {"max_new_tokens": 20}, NON_TGI.request_json()["messages"], None, None)
    assert got.text == "What is this deep learning?"
    assert got.finish_reason == "stop"
    assert got.usage == (13, 7, 20)


@pytest.mark.parametrize("way", sorted(STREAMED))
def test_a_tgi_stream_without_done_ends_with_its_finish_reason(
    replay: ReplayServer, way: str
) -> None:
    # TGI 1.4.3 on api-inference: "data:" without a space, no [DONE], "text_completion" objects.
    path = "/models/HuggingFaceH4/zephyr-7b-beta" + CHAT
    replay.serve(TGI_143_STREAM, at=path)
    target = {"endpoint_url": replay.url + "/models/HuggingFaceH4/zephyr-7b-beta"}
    messages = TGI_143_STREAM.request_json()["messages"]
    got = STREAMED[way](target, {"max_new_tokens": 20}, messages, None, None)
    want = recorded_stream(TGI_143_STREAM.events())
    assert "[DONE]" not in TGI_143_STREAM.events()
    assert got.text == want.text
    assert got.text.startswith("Deep learning is a subfield of machine learning")
    assert got.finish_reason == "length"
    (sent,) = replay.received
    assert sent.path == path
    # hfrag names no model for an endpoint ("tgi", as the recording); TGI ignores the field.
    assert sent.json()["model"] == TGI_143_STREAM.request_json()["model"] == "tgi"


def test_the_routers_401_is_an_authentication_error(replay: ReplayServer) -> None:
    replay.serve(UNAUTHORIZED, at=CHAT)
    client = ChatClient(model="meta-llama/Meta-Llama-3-70B-Instruct", router_url=replay.url)
    with pytest.raises(AuthenticationError) as caught:
        client.chat([{"role": "user", "content": "please output 'Observation'"}])
    assert caught.value.status == 401
    assert caught.value.message == "Invalid username or password."


def test_tgis_plain_text_422_is_an_invalid_request_with_its_text(replay: ReplayServer) -> None:
    # The recorded request sent "messages" as a string, which hfrag refuses before sending; the
    # same answer comes to any body TGI's JSON extractor rejects.
    path = "/models/meta-llama/Meta-Llama-3-70B-Instruct" + CHAT
    replay.serve(PLAIN_422, at=path)
    client = ChatClient(endpoint_url=replay.url + "/models/meta-llama/Meta-Llama-3-70B-Instruct")
    with pytest.raises(InvalidRequestError) as caught:
        client.chat([{"role": "user", "content": "please output 'Observation'"}])
    assert caught.value.status == 422
    assert caught.value.message.startswith("Failed to deserialize the JSON body into the target")
