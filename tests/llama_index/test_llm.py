"""The LlamaIndex LLM on the local server: complete, chat, streams, async, metadata, errors."""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
import time
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    AudioBlock,
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    TextBlock,
)
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler

from hfrag.errors import (
    AuthenticationError,
    BackendError,
    ConfigurationError,
    InferenceConnectionError,
    InputError,
    InvalidRequestError,
    NotFoundError,
)
from hfrag.llama_index import HuggingFaceInferenceLLM
from hfrag.server.faults import FaultConfig
from hfrag.server.testing import CannedResponse, ServerHandle
from hfrag.transport import Secret
from tests.adapters import PLANTED
from tests.llama_index.conftest import llm_kwargs
from tests.llm import ANSWER, LLAMA, PROMPT
from tests.sockets import open_connections

CHAT = "/v1/chat/completions"
MESSAGES = [
    ChatMessage(role="system", content="Answer from the context."),
    ChatMessage(role="user", content=PROMPT),
]


def make(layout: str, url: str, **kw: Any) -> HuggingFaceInferenceLLM:
    return HuggingFaceInferenceLLM(**llm_kwargs(layout, url), max_retry_wait=0.01, **kw)


def paths(srv: ServerHandle) -> list[str]:
    return [path for (path, status) in srv.counters.requests.elements() if status == 200]


def texts(responses: list[Any]) -> tuple[str, str]:
    """The joined deltas and the text of the last response."""
    deltas = "".join(r.delta or "" for r in responses)
    last = responses[-1]
    return deltas, last.text if isinstance(last, CompletionResponse) else last.message.content


# -- answers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_complete_and_chat_in_every_layout(gsrv: ServerHandle, layout: str, mode: str) -> None:
    llm = make(layout, gsrv.url)
    if mode == "sync":
        completion, chat = llm.complete(PROMPT), llm.chat(MESSAGES)
    else:

        async def go() -> tuple[CompletionResponse, ChatResponse]:
            return await llm.acomplete(PROMPT), await llm.achat(MESSAGES)

        completion, chat = asyncio.run(go())

    assert completion.text == ANSWER
    assert chat.message.content == ANSWER
    assert chat.message.role == "assistant"
    for response in (completion, chat):
        assert response.additional_kwargs["finish_reason"] == "stop"
        assert response.additional_kwargs["completion_tokens"] > 0
        assert isinstance(response.raw, dict)
        assert response.raw["usage"]["completion_tokens"] > 0
    # A TGI endpoint takes prompts on /generate; messages go to its chat route.
    expected = {"router": [CHAT, CHAT], "tgi": ["/generate", CHAT], "chat": [CHAT, CHAT]}
    assert [p for p in paths(gsrv) if p != "/info"] == expected[layout]
    chat_body = gsrv.counters.bodies[-1]
    assert chat_body["messages"] == [
        {"role": "system", "content": "Answer from the context."},
        {"role": "user", "content": PROMPT},
    ]
    assert chat_body["model"] == (LLAMA if layout == "router" else "tgi")


def test_provider_and_options_reach_the_router(gsrv: ServerHandle) -> None:
    llm = make("router", gsrv.url, provider="together", temperature=0.5, max_new_tokens=40)
    assert llm.complete(PROMPT, stop=["capital"], seed=7, max_tokens=20).text == "Paris is the "
    body = gsrv.counters.bodies[-1]
    assert body["model"] == f"{LLAMA}:together"
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.5, 20, 7)
    assert body["stop"] == ["capital"]


# -- streams ----------------------------------------------------------------------------------


def _stream(llm: HuggingFaceInferenceLLM, mode: str, method: str) -> list[Any]:
    if mode == "sync":
        if method == "complete":
            return list(llm.stream_complete(PROMPT))
        return list(llm.stream_chat(MESSAGES))

    async def go() -> list[Any]:
        if method == "complete":
            return [r async for r in await llm.astream_complete(PROMPT)]
        return [r async for r in await llm.astream_chat(MESSAGES)]

    return asyncio.run(go())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("method", ["complete", "chat"])
def test_stream_adds_up_to_the_whole_answer(
    gsrv: ServerHandle, layout: str, mode: str, method: str
) -> None:
    llm = make(layout, gsrv.url)
    whole = (
        llm.complete(PROMPT).text if method == "complete" else llm.chat(MESSAGES).message.content
    )
    responses = _stream(llm, mode, method)

    assert texts(responses) == (whole, whole)
    assert len(responses) == len(ANSWER.split()) + 1  # one per token, then the final one
    assert all(r.delta for r in responses[:-1])
    final = responses[-1]
    assert final.delta == ""
    assert final.additional_kwargs["finish_reason"] == "stop"
    assert final.additional_kwargs["completion_tokens"] > 0
    assert final.raw["usage"]["completion_tokens"] > 0


LAST_CHUNK_STREAM = [
    'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}',
    "",
    # The last text arrives in the chunk that also ends the answer, with no [DONE] after the
    # usage chunk: the reference integration's async stream lost exactly this piece.
    'data: {"choices":[{"index":0,"delta":{"content":"lo!"},"finish_reason":"stop"}]}',
    "",
    'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}',
    "",
]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("method", ["complete", "chat"])
def test_last_chunk_is_never_dropped(gsrv: ServerHandle, mode: str, method: str) -> None:
    gsrv.script(CHAT, CannedResponse(200, sse=LAST_CHUNK_STREAM))
    responses = _stream(make("router", gsrv.url), mode, method)
    assert [r.delta for r in responses] == ["Hel", "lo!", ""]
    assert texts(responses) == ("Hello!", "Hello!")
    assert responses[-1].additional_kwargs == {
        "finish_reason": "stop",
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "total_tokens": 5,
    }


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_first_token_arrives_before_the_last_is_generated(
    gsrv: ServerHandle, layout: str, mode: str
) -> None:
    delay = 0.2
    gsrv.set_faults(FaultConfig(token_delay=delay))
    llm = make(layout, gsrv.url)
    llm.metadata  # noqa: B018 - reads /info now, so only the stream is timed below
    arrivals: list[float] = []
    start = time.monotonic()
    if mode == "sync":
        for response in llm.stream_complete(PROMPT):
            arrivals.append(time.monotonic() - start)
            assert response.text
    else:

        async def go() -> None:
            async for _ in await llm.astream_complete(PROMPT):
                arrivals.append(time.monotonic() - start)

        asyncio.run(go())
    # Six tokens, each `delay` apart: buffered output would arrive all at once at the end.
    # (An order of arrival, not a timing budget: the gaps are what the server spent.)
    assert arrivals[-1] - arrivals[0] >= 4 * delay


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("method", ["complete", "chat"])
def test_abandoned_stream_closes_its_connection(gsrv: ServerHandle, mode: str, method: str) -> None:
    context = "The tower is " + " ".join(f"w{i}" for i in range(3000)) + "."
    prompt = f"{context}\nQuestion: what is the tower?"
    llm = make("router", gsrv.url)
    assert open_connections(gsrv.port) == 0
    if mode == "sync":
        if method == "chat":
            stream = llm.stream_chat([ChatMessage(role="user", content=prompt)])
        else:
            stream = llm.stream_complete(prompt)
        first = next(stream)
        assert open_connections(gsrv.port) == 1
        stream.close()
    else:

        async def go() -> Any:
            if method == "chat":
                stream = await llm.astream_chat([ChatMessage(role="user", content=prompt)])
            else:
                stream = await llm.astream_complete(prompt)
            first = await stream.__anext__()
            assert open_connections(gsrv.port) == 1
            await stream.aclose()
            for _ in range(100):  # the connection closes on the loop's next turns
                if open_connections(gsrv.port) == 0:
                    break
                await asyncio.sleep(0.01)
            return first

        first = asyncio.run(go())
    assert first.delta == "The"
    deadline = time.monotonic() + 2
    while open_connections(gsrv.port) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert open_connections(gsrv.port) == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_error_event_inside_a_stream_raises_typed(
    gsrv: ServerHandle, layout: str, mode: str
) -> None:
    gsrv.set_faults(FaultConfig(p_stream_error=1.0))
    got: list[str] = []
    llm = make(layout, gsrv.url)

    def sync() -> None:
        got.extend(r.delta for r in llm.stream_chat(MESSAGES))

    async def go() -> None:
        async for r in await llm.astream_chat(MESSAGES):
            got.append(r.delta)

    with pytest.raises(BackendError, match="injected fault"):
        sync() if mode == "sync" else asyncio.run(go())
    assert got  # the tokens before the error were delivered


def test_cut_stream_raises_instead_of_a_short_answer(gsrv: ServerHandle) -> None:
    gsrv.script(CHAT, CannedResponse(200, sse=LAST_CHUNK_STREAM[:2]))
    with pytest.raises(InferenceConnectionError, match="ended before the answer"):
        list(make("router", gsrv.url).stream_chat(MESSAGES))


@pytest.mark.parametrize("streaming", [False, True])
def test_usage_reaches_llama_index_token_counting(
    gsrv: ServerHandle, layout: str, streaming: bool
) -> None:
    counter = TokenCountingHandler()
    llm = make(layout, gsrv.url, callback_manager=CallbackManager([counter]))
    final = list(llm.stream_chat(MESSAGES))[-1] if streaming else llm.chat(MESSAGES)
    assert counter.completion_llm_token_count == final.additional_kwargs["completion_tokens"] > 0
    assert counter.prompt_llm_token_count == final.additional_kwargs["prompt_tokens"] > 0


# -- metadata ---------------------------------------------------------------------------------


def test_metadata_from_tgi_info_or_configured(gsrv: ServerHandle, layout: str) -> None:
    meta = make(layout, gsrv.url).metadata
    assert meta.is_chat_model is (layout != "tgi")
    assert meta.is_function_calling_model is True
    assert meta.model_name == LLAMA
    if layout == "router":  # the router has no /info: LlamaIndex's defaults
        assert (meta.context_window, meta.num_output) == (3900, 256)
    else:  # TGI's /info: max_total_tokens 8192, max_input_tokens 4096
        assert (meta.context_window, meta.num_output) == (8192, 4096)
    configured = make(layout, gsrv.url, context_window=2048, num_output=100).metadata
    assert (configured.context_window, configured.num_output) == (2048, 100)
    assert make(layout, gsrv.url, max_new_tokens=64).metadata.num_output == 64
    assert gsrv.counters.total("/info", 200) <= 3  # once per client, never per call


def test_task_forces_the_wire_form(gsrv: ServerHandle) -> None:
    text = make("tgi", gsrv.url, task="text-generation")
    meta = text.metadata
    assert (meta.is_chat_model, meta.is_function_calling_model) == (False, False)
    assert text.chat(MESSAGES).message.content == ANSWER  # messages_to_prompt, then /generate
    assert paths(gsrv)[-1] == "/generate"
    assert gsrv.counters.bodies[-1]["inputs"].startswith("system: Answer from the context.")
    chat = make("tgi", gsrv.url, task="chat")
    assert chat.metadata.is_chat_model is True
    assert chat.complete(PROMPT).text == ANSWER
    assert paths(gsrv)[-1] == CHAT


def test_a_tgi_generate_url_takes_prompts_there_and_messages_to_its_chat_route(
    gsrv: ServerHandle,
) -> None:
    llm = HuggingFaceInferenceLLM(endpoint_url=gsrv.url + "/generate")
    assert llm.metadata.is_chat_model is False
    assert llm.complete(PROMPT).text == llm.chat(MESSAGES).message.content == ANSWER
    assert [p for p in paths(gsrv) if p != "/info"] == ["/generate", CHAT]


def test_metadata_of_an_unreachable_endpoint_falls_back() -> None:
    llm = HuggingFaceInferenceLLM(endpoint_url="http://127.0.0.1:9", max_retries=0)
    meta = llm.metadata
    assert (meta.context_window, meta.is_chat_model) == (3900, True)
    assert meta.model_name == "http://127.0.0.1:9"


# -- errors and settings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("canned", "error"),
    [
        (CannedResponse(401, {"error": "Invalid credentials"}), AuthenticationError),
        (CannedResponse(404, {"error": "Model x does not exist"}), NotFoundError),
        (CannedResponse(422, {"error": "bad", "error_type": "validation"}), InvalidRequestError),
        (CannedResponse(200, {"choices": []}), Exception),
    ],
)
def test_server_errors_are_typed(
    gsrv: ServerHandle, canned: CannedResponse, error: type[Exception]
) -> None:
    gsrv.script(CHAT, canned)
    with pytest.raises(error) as info:
        make("router", gsrv.url, token=PLANTED).chat(MESSAGES)
    assert type(info.value).__module__ == "hfrag.errors"
    assert PLANTED not in str(info.value)


def test_bad_per_call_arguments_fail_before_sending(gsrv: ServerHandle) -> None:
    llm = make("router", gsrv.url)
    with pytest.raises(ConfigurationError, match=r"unknown generation options.*temprature"):
        llm.complete(PROMPT, temprature=0.1)
    with pytest.raises(ConfigurationError, match="temperature must be >= 0"):
        llm.chat(MESSAGES, temperature=-1)
    with pytest.raises(InputError, match="empty"):
        llm.complete("   ")
    with pytest.raises(ConfigurationError, match=r"\['tools'\] apply to chat completions"):
        make("tgi", gsrv.url, task="text-generation").chat(MESSAGES, tools=[])
    with pytest.raises(ConfigurationError, match=r"\['response_format'\] apply to chat"):
        llm.complete(PROMPT, response_format={"type": "json_object"})
    with pytest.raises(InputError, match="messages is empty"):
        llm.chat([])
    with pytest.raises(TypeError, match="prompt must be a string"):
        llm.complete(b"bytes")  # type: ignore[arg-type]
    audio = ChatMessage(role="user", blocks=[AudioBlock(audio=b"RIFF", format="wav")])
    with pytest.raises(InputError, match="'audio' block"):
        llm.chat([audio])
    assert gsrv.counters.bodies == []


def test_odd_but_valid_inputs(gsrv: ServerHandle) -> None:
    llm = make("router", gsrv.url)
    assert llm.complete(PROMPT, stop="capital").text == "Paris is the "  # one string
    odd = [
        ChatMessage(role="developer", content="Be brief."),
        ChatMessage(
            role="user", blocks=[TextBlock(text="Berlin is in Germany."), TextBlock(text=PROMPT)]
        ),
    ]
    assert llm.chat(odd).message.content == ANSWER
    assert gsrv.counters.bodies[-1]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"Berlin is in Germany.\n{PROMPT}"},
    ]
    assert llm.complete("Ünïcødé is fine.\nQuestion: is ünïcødé fine?").text == "Ünïcødé is fine."


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "neither"),
        ({"model": LLAMA, "endpoint_url": "http://127.0.0.1:1"}, "not both"),
        ({"endpoint_url": "http://127.0.0.1:1", "provider": "together"}, "provider applies"),
        ({"model": LLAMA, "temperature": -0.5}, "temperature"),
        ({"model": LLAMA, "task": "conversational"}, "task"),
        ({"model": LLAMA, "context_window": 0}, "context_window"),
        ({"model": LLAMA, "max_tokens": 0}, "max_new_tokens must be >= 1"),
        ({"model": LLAMA, "temprature": 0.5}, "(?s)temprature.*Extra inputs"),
    ],
)
def test_invalid_settings_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        HuggingFaceInferenceLLM(**kwargs, token=PLANTED)
    assert PLANTED not in str(info.value)


def test_token_never_shows_and_reaches_only_its_target(gsrv: ServerHandle) -> None:
    llm = make("tgi", gsrv.url, api_key=PLANTED, headers={"X-Api-Key": PLANTED, "X-Trace": "t1"})
    assert llm.complete(PROMPT).text == ANSWER
    assert gsrv.counters.headers[-1]["authorization"] == f"Bearer {PLANTED}"
    shown = {
        "repr": repr(llm),
        "str": str(llm),
        "to_dict": str(llm.to_dict()),
        "to_json": llm.to_json(),
        "model_dump_json": llm.model_dump_json(),
        "to_payload": str(llm.to_payload()),
        "metadata": repr(llm.metadata),
    }
    assert [where for where, text in shown.items() if PLANTED in text] == []
    data = json.loads(shown["to_json"])
    assert data["class_name"] == "HuggingFaceInferenceLLM"
    assert data["headers"] == {"X-Api-Key": "**********", "X-Trace": "t1"}


def test_copies_and_pickles_work_with_their_own_connections(gsrv: ServerHandle) -> None:
    # A token given as a Secret is the one a pickle may carry (a plain string stays behind).
    llm = make("chat", gsrv.url, token=Secret(PLANTED), temperature=0.3)
    assert llm.complete(PROMPT).text == ANSWER  # the original now holds live connections
    assert PLANTED.encode() not in pickle.dumps(make("chat", gsrv.url, token=PLANTED))
    for clone in (copy.deepcopy(llm), pickle.loads(pickle.dumps(llm)), llm.model_copy()):
        assert clone.complete(PROMPT).text == ANSWER
        assert clone.temperature == 0.3
        assert gsrv.counters.headers[-1]["authorization"] == f"Bearer {PLANTED}"
    deep = copy.deepcopy(llm)
    assert deep.text_generation_client() is not llm.text_generation_client()
    assert (
        deep.text_generation_client().sync_transport
        is not llm.text_generation_client().sync_transport
    )
    assert llm.complete(PROMPT).text == ANSWER  # the original is untouched by its copies


def test_a_changed_field_takes_effect(gsrv: ServerHandle) -> None:
    llm = make("router", gsrv.url)
    llm.complete(PROMPT)
    llm.temperature = 0.7
    llm.complete(PROMPT)
    assert [b.get("temperature") for b in gsrv.counters.bodies] == [None, 0.7]


async def test_sync_methods_work_inside_a_running_loop(gsrv: ServerHandle) -> None:
    llm = make("tgi", gsrv.url)
    assert llm.complete(PROMPT).text == (await llm.acomplete(PROMPT)).text == ANSWER
    assert next(r.delta for r in llm.stream_chat(MESSAGES)) == "Paris"


def test_async_methods_work_across_event_loops(gsrv: ServerHandle) -> None:
    llm = make("router", gsrv.url)
    first = asyncio.run(llm.achat(MESSAGES))
    second = asyncio.run(llm.achat(MESSAGES))
    assert first.message.content == second.message.content == ANSWER


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_streaming_field_streams_under_the_hood(gsrv: ServerHandle, mode: str) -> None:
    llm = make("router", gsrv.url, streaming=True)
    if mode == "sync":
        out = llm.complete(PROMPT).text, llm.chat(MESSAGES).message.content
    else:

        async def go() -> tuple[str, str | None]:
            return (await llm.acomplete(PROMPT)).text, (await llm.achat(MESSAGES)).message.content

        out = asyncio.run(go())
    assert out == (ANSWER, ANSWER)
    assert all(b.get("stream") is True for b in gsrv.counters.bodies)
