"""Text generation on the router's hf-inference: recorded TGI and non-TGI answers, every class.

Recordings (huggingface_hub cassettes, see recordings/SOURCES.json):

- google/flan-t5-large, served by the transformers pipeline (not TGI), 2025: 400 ``The
  following `model_kwargs` are not used by the model: ['return_full_text', 'stop', 'details']``,
  then, asked again without them, ``[{"generated_text": "I am at work"}]``.
- gpt2 on api-inference, 2023: the same refusal naming ``['details', 'stop', 'watermark',
  'decoder_input_details']``, then three answers to requests without them.
- google/flan-t5-xxl served by TGI, 2025: an answer with ``details``, a stream (``data:``
  without a space, no ``[DONE]``), and 422 ``{"error", "error_type": "validation"}``.

What hfrag must do with the refusal (as huggingface_hub's ``text_generation`` does): retry once
without the parameters named, remember them for that client and model, still apply a dropped
``stop`` (it trims stop sequences itself), and raise a typed error with the server's message
when the retry fails too.

hfrag's request differs from the recorded ones; the real server accepts hfrag's form because:

- gpt2's path: recorded on the retired ``api-inference.huggingface.co/models/gpt2``; hfrag posts
  to the router's ``/hf-inference/models/gpt2``, the path of the 2025 gpt2 recording
  (``TestTextGenerationClientVCR.test_generate_non_tgi_endpoint``, same model and refusal).
- ``details: true``: hfrag asks for the finish reason; TGI's ``GenerateParameters.details`` (TGI
  ``router/src/lib.rs``, also in the 2025 flan-t5-xxl recording above) and the refusal names it
  for a pipeline model, which the retry drops.
- ``return_full_text: false`` where flan-t5-large's recording sent ``true``: a refused parameter
  either way; it is dropped before the answer that counts.
- no ``"stream": false``: TGI's ``stream`` defaults to false (``router/src/lib.rs``,
  ``GenerateRequest``); the pipeline answered the recorded retry, whose only non-parameter
  field it was.
- ``stop`` with the test's sequences where the recording sent ``[]``: a refused parameter too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from hfrag.errors import InvalidRequestError
from hfrag.tasks import GenerationOptions, TextGenerationClient, collect
from tests.conformance.replay import ReplayServer, cassette, derived, differences

FLAN_LARGE = cassette("TestTextGenerationClientVCR.test_generate_non_tgi_endpoint_regression_test")
GPT2 = cassette("TestTextGenerationAsyncClientVCR.test_generate_non_tgi_endpoint")
TGI_DETAILS = cassette("TestTextGenerationClientVCR.test_generate_with_details")[0]
TGI_STREAM = cassette("TestTextGenerationClientVCR.test_generate_stream_with_details")[0]
TGI_422 = cassette("TestTextGenerationClientVCR.test_generate_validation_error")[0]
REFUSAL = "The following `model_kwargs` are not used by the model"


def _path(model: str) -> str:
    return f"/hf-inference/models/{model}"


def _task(url: str, model: str, **options: Any) -> TextGenerationClient:
    return TextGenerationClient(
        model=model, router_url=url, task="text-generation", options=GenerationOptions(**options)
    )


def _langchain(url: str, model: str, **options: Any) -> Any:
    from hfrag.langchain import HuggingFaceInferenceLLM

    return HuggingFaceInferenceLLM(model=model, router_url=url, task="text-generation", **options)


def _llama_index(url: str, model: str, **options: Any) -> Any:
    from hfrag.llama_index import HuggingFaceInferenceLLM

    return HuggingFaceInferenceLLM(model=model, router_url=url, task="text-generation", **options)


Make = Callable[[str, str], Any]
#: Every class a user generates text with, and how it is asked twice on one object: (make, call).
WAYS: dict[str, tuple[Callable[..., Any], Callable[[Any, str], str]]] = {
    "TextGenerationClient.generate": (_task, lambda c, p: c.generate(p).text),
    "TextGenerationClient.agenerate": (_task, lambda c, p: asyncio.run(c.agenerate(p)).text),
    "langchain.invoke": (_langchain, lambda c, p: c.invoke(p)),
    "langchain.ainvoke": (_langchain, lambda c, p: asyncio.run(c.ainvoke(p))),
    "llama_index.complete": (_llama_index, lambda c, p: c.complete(p).text),
    "llama_index.acomplete": (_llama_index, lambda c, p: asyncio.run(c.acomplete(p)).text),
}


@pytest.mark.parametrize("way", sorted(WAYS))
def test_refused_parameters_are_dropped_and_the_call_retried_once(
    replay: ReplayServer, way: str
) -> None:
    model = "google/flan-t5-large"
    for exchange in FLAN_LARGE:
        replay.serve(exchange, at=_path(model))
    make, call = WAYS[way]
    client = make(replay.url, model, max_new_tokens=20, temperature=0, stop=["Observation"])
    prompt = FLAN_LARGE[0].request_json()["inputs"]
    assert call(client, prompt) == "I am at work"
    first, retry = replay.received
    assert REFUSAL in FLAN_LARGE[0].body.decode()
    sent = first.json()["parameters"]
    assert {"return_full_text", "stop", "details"} <= sent.keys()
    # The retry is the first request without exactly what the server named, and the body the
    # server answered (see the module docstring for "stream").
    kept = {k: v for k, v in sent.items() if k not in ("return_full_text", "stop", "details")}
    assert retry.json() == {"inputs": prompt, "parameters": kept}
    assert differences(FLAN_LARGE[1].request_json(), retry.json()) == {"stream": (False, None)}


@pytest.mark.parametrize("way", sorted(WAYS))
def test_refused_parameters_are_remembered_and_a_dropped_stop_still_applies(
    replay: ReplayServer, way: str
) -> None:
    refusal, first, second = GPT2[:3]
    for exchange in (refusal, first, second):
        replay.serve(exchange, at=_path("gpt2"))
    make, call = WAYS[way]
    client = make(replay.url, "gpt2", max_new_tokens=10, temperature=0, stop=[" 6", " 11"])
    # " 3 4 5 6 7 8 9 10 11 12" and " 7 8 9 10 11 12 13 14 15 16", cut at the first stop.
    assert call(client, "0 1 2") == " 3 4 5"
    assert call(client, "4 5 6") == " 7 8 9 10"
    bodies = [r.json()["parameters"] for r in replay.received]
    assert len(bodies) == 3  # one refusal, then one request per call
    assert {"details", "stop"} <= bodies[0].keys()
    for later in bodies[1:]:
        assert not later.keys() & {"details", "stop", "watermark", "decoder_input_details"}


def test_a_retry_that_fails_again_raises_the_servers_message(replay: ReplayServer) -> None:
    # Both of the recording's refusals, one after the other: the retry is not repeated.
    replay.serve(GPT2[0], at=_path("gpt2"))
    replay.serve(GPT2[4], at=_path("gpt2"))
    client = _task(replay.url, "gpt2", stop=["x"])
    with pytest.raises(InvalidRequestError) as caught:
        client.generate("0 1 2")
    assert caught.value.status == 400
    assert REFUSAL in caught.value.message
    assert len(replay.received) == 2


@pytest.mark.parametrize("way", ["TextGenerationClient.generate", "TextGenerationClient.agenerate"])
def test_tgi_answer_with_details(replay: ReplayServer, way: str) -> None:
    model = "google/flan-t5-xxl"
    replay.serve(TGI_DETAILS, at=_path(model))
    client = _task(replay.url, model, max_new_tokens=1, temperature=0)
    out = (
        client.generate("test")
        if way.endswith(".generate")
        else asyncio.run(client.agenerate("test"))
    )
    assert out.text == ""
    assert out.finish_reason == "length"
    assert out.usage is not None
    assert out.usage.completion_tokens == 1
    (sent,) = replay.received
    # decoder_input_details asks for the prompt's tokens, which hfrag does not read.
    assert differences(TGI_DETAILS.request_json(), sent.json()) == {
        "parameters": (TGI_DETAILS.request_json()["parameters"], sent.json()["parameters"]),
        "stream": (False, None),
    }
    assert sent.json()["parameters"] == {
        "max_new_tokens": 1,
        "do_sample": False,
        "details": True,
        "return_full_text": False,
    }


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_tgi_stream_without_done(replay: ReplayServer, mode: str) -> None:
    model = "google/flan-t5-xxl"
    replay.serve(TGI_STREAM, at=_path(model))
    client = _task(replay.url, model, max_new_tokens=1, temperature=0)

    async def astream() -> list[Any]:
        return [c async for c in client.astream("test")]

    chunks = list(client.stream("test")) if mode == "sync" else asyncio.run(astream())
    out = collect(iter(chunks))
    assert out.text == " "  # the one token the recording carries
    assert out.finish_reason == "length"
    assert replay.received[0].json()["stream"] is True


def test_tgi_validation_error_is_typed_with_the_servers_message(replay: ReplayServer) -> None:
    model = "google/flan-t5-xxl"
    replay.serve(TGI_422, at=_path(model))
    with pytest.raises(InvalidRequestError) as caught:
        _task(replay.url, model, max_new_tokens=10000).generate("test")
    assert caught.value.status == 422
    assert caught.value.error_type == "validation"
    assert caught.value.message.startswith("Input validation error: `inputs` tokens + ")


#: Every class a user streams text from: (make, call returning the joined text).
STREAM_WAYS: dict[str, tuple[Callable[..., Any], Callable[[Any, str], str]]] = {
    "TextGenerationClient.stream": (_task, lambda c, p: collect(c.stream(p)).text),
    "langchain.stream": (_langchain, lambda c, p: "".join(c.stream(p))),
    "llama_index.stream_complete": (_llama_index, lambda c, p: list(c.stream_complete(p))[-1].text),
}


@pytest.mark.parametrize("way", sorted(STREAM_WAYS))
def test_tgi_stream_in_every_streaming_class(replay: ReplayServer, way: str) -> None:
    model = "google/flan-t5-xxl"
    replay.serve(TGI_STREAM, at=_path(model))
    make, call = STREAM_WAYS[way]
    assert call(make(replay.url, model, max_new_tokens=1, temperature=0), "test") == " "
    assert replay.received[0].json()["stream"] is True


@pytest.mark.parametrize("way", sorted(WAYS))
def test_tgi_validation_error_in_every_class(replay: ReplayServer, way: str) -> None:
    model = "google/flan-t5-xxl"
    replay.serve(TGI_422, at=_path(model))
    make, call = WAYS[way]
    with pytest.raises(InvalidRequestError, match="must be <= 1512") as caught:
        call(make(replay.url, model, max_new_tokens=10000), "test")
    assert caught.value.error_type == "validation"


def test_a_refusal_naming_only_parameters_hfrag_did_not_send_is_not_retried(
    replay: ReplayServer,
) -> None:
    # The flan-t5-large refusal with its list replaced by one parameter hfrag never sends: a
    # retry would send the same body again, so the server's error is raised at once.
    recorded = FLAN_LARGE[0].answer_json()
    names = "['return_full_text', 'stop', 'details']"
    answer = {k: v.replace(names, "['decoder_input_details']") if isinstance(v, str) else
              [w.replace(names, "['decoder_input_details']") for w in v]
              for k, v in recorded.items()}  # fmt: skip
    refusal = derived(answer, "refusal of an unsent parameter", status=400)
    replay.serve(refusal, at=_path("google/flan-t5-large"))
    with pytest.raises(InvalidRequestError, match="decoder_input_details"):
        _task(replay.url, "google/flan-t5-large").generate("How are you today?")
    assert len(replay.received) == 1
