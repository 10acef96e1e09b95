"""Reasoning and logprobs through the task clients, in every form servers send them.

The three forms (``reasoning_content``, ``reasoning``, an inline leading ``<think>``) are served
over HTTP by the local server's reasoning models (``hfrag.server.traits``), each in the four
call modes; the inline splitter is also checked at every chunk boundary directly.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from hfrag.errors import ConfigurationError, InvalidRequestError
from hfrag.server.testing import CannedResponse, ServerHandle
from hfrag.tasks import (
    ChatClient,
    GenerationOptions,
    LogprobsDelta,
    ReasoningDelta,
    TextDelta,
    TextGenerationClient,
)
from hfrag.tasks.reasoning import ThinkSplitter, split_think
from tests.llm import (
    ANSWER,
    PROMPT,
    REASONING,
    REASONING_CONTENT,
    REASONING_MODELS,
    REASONING_TEXT,
    TEXT_ONLY,
    THINK,
    WANTS_REASONING,
    traits_server,
    traits_srv,
)
from tests.tasks.test_llm_clients import CHAT, MODES, WEATHER, _delta, _sse, chat, fast, generate

__all__ = ["traits_server", "traits_srv"]  # fixtures

USER = [{"role": "user", "content": PROMPT}]


# -- the inline form, split piece by piece ------------------------------------------------------

WHOLE = "  <think>\nweigh the options </thi\n</think>\n\nThe answer.</think>"


@pytest.mark.parametrize("cut", range(1, len(WHOLE)))
def test_think_split_is_the_same_at_every_chunk_boundary(cut: int) -> None:
    splitter = ThinkSplitter()
    parts = [splitter.feed(WHOLE[:cut]), splitter.feed(WHOLE[cut:]), splitter.flush()]
    reasoning = "".join(p[0] for p in parts)
    answer = "".join(p[1] for p in parts)
    assert (reasoning, answer) == ("\nweigh the options </thi\n", "The answer.</think>")
    assert split_think(WHOLE) == (reasoning, answer)


def test_think_split_one_character_at_a_time() -> None:
    splitter = ThinkSplitter()
    parts = [splitter.feed(c) for c in WHOLE] + [splitter.flush()]
    assert "".join(p[0] for p in parts) == "\nweigh the options </thi\n"
    assert "".join(p[1] for p in parts) == "The answer.</think>"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no tags here", (None, "no tags here")),
        ("  answer <think>not leading</think>", (None, "  answer <think>not leading</think>")),
        ("<think>cut by the token limit", ("cut by the token limit", "")),
        ("<thin", (None, "<thin")),  # a prefix of the tag that never became one
        ("<think></think>answer", (None, "answer")),
    ],
)
def test_only_a_leading_think_opens_reasoning(text: str, expected: Any) -> None:
    assert split_think(text) == expected


def test_the_split_can_be_turned_off() -> None:
    assert split_think("<think>a</think>b", enabled=False) == (None, "<think>a</think>b")


# -- every form over HTTP, in every mode ----------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", REASONING_MODELS)
def test_chat_reasoning_is_kept_apart_in_every_form(
    traits_srv: ServerHandle, model: str, mode: str
) -> None:
    client = ChatClient(model, router_url=traits_srv.url, **fast())
    out = chat(client, mode, USER)
    assert out.text == ANSWER
    assert out.reasoning == REASONING_TEXT
    assert "think" not in out.text


@pytest.mark.parametrize(
    ("model", "field"),
    [(REASONING_CONTENT, "reasoning_content"), (REASONING, "reasoning"), (THINK, "content")],
)
def test_the_server_sends_each_form_as_its_model_asks(
    traits_srv: ServerHandle, model: str, field: str
) -> None:
    """The wire is what the form says (so the client's reading of each is what is tested)."""
    body = {"model": model, "messages": USER}
    answer = httpx.post(traits_srv.url + "/v1/chat/completions", json=body, timeout=10).json()
    message = answer["choices"][0]["message"]
    assert REASONING_TEXT in message[field]
    if field != "content":
        assert message["content"] == ANSWER


def test_stream_yields_reasoning_deltas_before_the_answer(traits_srv: ServerHandle) -> None:
    for model in REASONING_MODELS:
        chunks = list(ChatClient(model, router_url=traits_srv.url, **fast()).stream_chat(USER))
        kinds = [type(c) for c in chunks if isinstance(c, (TextDelta, ReasoningDelta))]
        first_text = kinds.index(TextDelta)
        assert kinds[:first_text] == [ReasoningDelta] * first_text
        assert ReasoningDelta not in kinds[first_text:]
        assert len([k for k in kinds if k is ReasoningDelta]) > 3  # streamed as it grows


@pytest.mark.parametrize("mode", MODES)
def test_text_generation_splits_the_inline_form(traits_srv: ServerHandle, mode: str) -> None:
    client = TextGenerationClient(endpoint_url=traits_srv.url, **fast())
    assert client.wire() == "text-generation"
    out = generate(client, mode, PROMPT)
    assert (out.text, out.reasoning) == (ANSWER, REASONING_TEXT)


@pytest.mark.parametrize("mode", MODES)
def test_turning_the_split_off_leaves_the_text_as_sent(traits_srv: ServerHandle, mode: str) -> None:
    options = GenerationOptions(split_reasoning=False)
    out = chat(ChatClient(THINK, router_url=traits_srv.url, options=options, **fast()), mode, USER)
    assert out.text == f"<think>{REASONING_TEXT}</think>{ANSWER}"
    assert out.reasoning is None
    text = TextGenerationClient(endpoint_url=traits_srv.url, options=options, **fast())
    assert generate(text, mode, PROMPT).text == out.text


@pytest.mark.parametrize("send", [False, True])
def test_whether_reasoning_goes_back_is_a_setting(traits_srv: ServerHandle, send: bool) -> None:
    client = ChatClient(
        REASONING,
        router_url=traits_srv.url,
        options=GenerationOptions(send_reasoning=send),
        **fast(),
    )
    turn = {"role": "assistant", "content": "Hi.", "reasoning_content": "r", "reasoning": "s"}
    client.chat([*USER, turn, {"role": "user", "content": "And Italy?"}])
    sent = traits_srv.counters.bodies[-1]["messages"][1]
    assert ("reasoning_content" in sent, "reasoning" in sent) == (send, send)
    assert sent["content"] == "Hi."


def test_reasoning_options_are_sent_and_checked_at_construction(traits_srv: ServerHandle) -> None:
    options = GenerationOptions(
        reasoning_effort="low",
        enable_thinking=False,
        model_kwargs={"chat_template_kwargs": {"preserve_thinking": True}},
    )
    ChatClient(REASONING, router_url=traits_srv.url, options=options, **fast()).chat(USER)
    body = traits_srv.counters.bodies[-1]
    assert body["reasoning_effort"] == "low"
    assert body["chat_template_kwargs"] == {"preserve_thinking": True, "enable_thinking": False}
    with pytest.raises(ConfigurationError, match="reasoning_effort must be one of"):
        GenerationOptions(reasoning_effort="max")
    with pytest.raises(ConfigurationError, match="enable_thinking must be true or false"):
        GenerationOptions(enable_thinking="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="chat_template_kwargs"):
        GenerationOptions(model_kwargs={"chat_template_kwargs": "x"})
    text = TextGenerationClient(endpoint_url=traits_srv.url, options=options, **fast())
    with pytest.raises(ConfigurationError, match="chat-completions option"):
        text.generate(PROMPT)


# -- logprobs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", [REASONING, THINK])
def test_chat_logprobs_streamed_and_not(traits_srv: ServerHandle, model: str, mode: str) -> None:
    options = GenerationOptions(top_logprobs=2)
    out = chat(ChatClient(model, router_url=traits_srv.url, options=options, **fast()), mode, USER)
    assert out.logprobs is not None
    tokens = "".join(t.token for t in out.logprobs)
    # content tokens only: a field form's reasoning is not content; the inline form's is
    assert tokens == (ANSWER if model == REASONING else f"<think>{REASONING_TEXT}</think>{ANSWER}")
    assert all(t.logprob is not None and t.logprob < 0 for t in out.logprobs)
    assert all(len(t.top) == 2 and t.top[0].token == t.token for t in out.logprobs)
    assert traits_srv.counters.bodies[-1]["logprobs"] is True


@pytest.mark.parametrize("mode", MODES)
def test_text_generation_logprobs_from_tgi_details(traits_srv: ServerHandle, mode: str) -> None:
    client = TextGenerationClient(
        endpoint_url=traits_srv.url, options=GenerationOptions(logprobs=True), **fast()
    )
    out = generate(client, mode, PROMPT)
    assert out.logprobs is not None
    assert "".join(t.token for t in out.logprobs) == f"<think>{REASONING_TEXT}</think>{ANSWER}"
    assert "</s>" not in [t.token for t in out.logprobs]  # TGI's special end token is left out


def test_no_logprobs_unless_asked(traits_srv: ServerHandle) -> None:
    client = ChatClient(REASONING, router_url=traits_srv.url, **fast())
    assert client.chat(USER).logprobs is None
    assert not any(isinstance(c, LogprobsDelta) for c in client.stream_chat(USER))
    assert "logprobs" not in traits_srv.counters.bodies[-1]


def test_top_logprobs_is_checked_at_construction() -> None:
    for bad in ({"top_logprobs": 21}, {"top_logprobs": -1}, {"top_logprobs": 2, "logprobs": False}):
        with pytest.raises(ConfigurationError):
            GenerationOptions(**bad)  # type: ignore[arg-type]


# -- images ---------------------------------------------------------------------------------------

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


def test_a_text_only_model_refusing_an_image_is_a_typed_error(traits_srv: ServerHandle) -> None:
    message = {"role": "user", "content": [{"type": "text", "text": "What is it?"}, IMAGE]}
    client = ChatClient(TEXT_ONLY, router_url=traits_srv.url, **fast())
    with pytest.raises(InvalidRequestError) as caught:
        client.chat([message])
    assert caught.value.status == 400
    assert "not a multimodal model" in caught.value.message
    assert traits_srv.counters.bodies[-1]["messages"][0]["content"][1] == IMAGE


# -- answers in shapes the local server does not make ---------------------------------------------


def test_vllm_style_deltas_with_null_fields_and_a_tag_split_across_chunks(
    traits_srv: ServerHandle,
) -> None:
    """vLLM sends ``reasoning_content: null`` beside content; a model without a parser splits
    ``<think>`` across tokens. Both in one stream: nothing leaks into the text."""
    events = _sse(
        _delta({"role": "assistant", "content": "", "reasoning_content": None}),
        _delta({"content": "<th", "reasoning_content": None}),
        _delta({"content": "ink>weigh", "reasoning_content": None}),
        _delta({"content": " it</thi"}),
        _delta({"content": "nk>\n\nYes."}, "stop"),
    )
    traits_srv.script(CHAT, CannedResponse(200, sse=events))
    chunks = list(ChatClient(endpoint_url=traits_srv.url, **fast()).stream_chat(USER))
    text = "".join(c.text for c in chunks if isinstance(c, TextDelta))
    thought = "".join(c.text for c in chunks if isinstance(c, ReasoningDelta))
    assert (thought, text) == ("weigh it", "Yes.")


def test_a_field_and_stop_sequences_apply_to_the_answer_only(traits_srv: ServerHandle) -> None:
    answer = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Yes. END", "reasoning": "END of it"},
            }
        ]
    }
    traits_srv.script(CHAT, CannedResponse(200, answer))
    out = ChatClient(endpoint_url=traits_srv.url, **fast()).chat(USER, stop=["END"])
    assert (out.text, out.reasoning) == ("Yes. ", "END of it")


def test_tgi_top_tokens_become_the_alternatives(traits_srv: ServerHandle) -> None:
    """TGI ``/generate`` with ``top_n_tokens``: ``details.top_tokens`` is one list per token."""
    token = {"id": 5, "text": " Paris", "logprob": -0.1, "special": False}
    other = {"id": 6, "text": " Rome", "logprob": -2.5, "special": False}
    eos = {"id": 2, "text": "</s>", "logprob": -0.01, "special": True}
    answer = {
        "generated_text": " Paris",
        "details": {
            "finish_reason": "eos_token",
            "generated_tokens": 2,
            "tokens": [token, eos],
            "top_tokens": [[token, other], [eos]],
        },
    }
    traits_srv.script("/generate", CannedResponse(200, answer))
    options = GenerationOptions(top_logprobs=2)
    out = TextGenerationClient(endpoint_url=traits_srv.url, options=options, **fast()).generate(
        PROMPT
    )
    assert out.logprobs is not None
    (only,) = out.logprobs
    assert (only.token, only.logprob) == (" Paris", -0.1)
    assert [(t.token, t.logprob) for t in only.top] == [(" Paris", -0.1), (" Rome", -2.5)]
    assert traits_srv.counters.bodies[-1]["parameters"]["top_n_tokens"] == 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", REASONING_MODELS)
def test_a_reasoning_model_still_calls_tools(
    traits_srv: ServerHandle, model: str, mode: str
) -> None:
    client = ChatClient(model, router_url=traits_srv.url, **fast())
    asked = [{"role": "user", "content": "What is the weather in Paris?"}]
    out = chat(client, mode, asked, tools=[WEATHER])
    assert [c.name for c in out.tool_calls] == ["get_weather"]
    assert out.text == ""


@pytest.mark.parametrize("mode", MODES)
def test_reasoning_tokens_are_counted_where_the_server_says(
    traits_srv: ServerHandle, mode: str
) -> None:
    counted = len(REASONING_TEXT.split()) + 2  # a token per word, and the two tags
    for model, expected in ((REASONING_CONTENT, counted), (REASONING, counted), (THINK, None)):
        out = chat(ChatClient(model, router_url=traits_srv.url, **fast()), mode, USER)
        assert out.usage is not None
        assert out.usage.reasoning_tokens == expected


TOOL_TURNS = [
    *USER,
    {
        "role": "assistant",
        "content": None,
        "reasoning_content": "look it up",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
]


def test_a_server_that_wants_reasoning_back_gets_it_and_the_client_remembers(
    traits_srv: ServerHandle,
) -> None:
    client = ChatClient(WANTS_REASONING, router_url=traits_srv.url, **fast())
    out = client.chat(TOOL_TURNS)
    assert out.text
    first, second = traits_srv.counters.bodies
    assert "reasoning_content" not in first["messages"][1]  # the default: not sent back
    assert second["messages"][1]["reasoning_content"] == "look it up"
    client.chat(TOOL_TURNS)
    assert len(traits_srv.counters.bodies) == 3  # sent at once from now on
    assert traits_srv.counters.bodies[-1]["messages"][1]["reasoning_content"] == "look it up"


def test_the_refusal_stands_when_there_is_no_reasoning_to_send(traits_srv: ServerHandle) -> None:
    turns = [{k: v for k, v in m.items() if k != "reasoning_content"} for m in TOOL_TURNS]
    with pytest.raises(InvalidRequestError, match="must be passed back"):
        ChatClient(WANTS_REASONING, router_url=traits_srv.url, **fast()).chat(turns)
    assert len(traits_srv.counters.bodies) == 1
