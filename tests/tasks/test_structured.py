"""Structured output through the chat client: native form, forced tool call, JSON-mode prompt.

A server with native support (the router layout's model, a TGI endpoint), one that refuses
``response_format`` and one that refuses tools too (``hfrag.server.traits``).
"""

from __future__ import annotations

import pytest

from hfrag._fields.structured import validated
from hfrag.errors import InvalidRequestError
from hfrag.server.testing import ServerHandle
from hfrag.tasks import ChatClient, StructuredOutputError, StructuredSpec
from hfrag.tasks.structured import refuses
from tests.llm import LLAMA, NO_FORMAT, NO_FORMAT_NO_TOOLS, traits_server, traits_srv
from tests.tasks.test_llm_clients import fast

__all__ = ["traits_server", "traits_srv"]  # fixtures

CITY = StructuredSpec(
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    },
    "City",
)
ASK = [{"role": "user", "content": "city: Paris, population is 2100000"}]
EXPECTED = {"city": "Paris", "population": 2100000}


def sent(traits_srv: ServerHandle) -> list[str]:
    """What each chat request asked with: response_format, tools, or neither (a prompt)."""
    kinds = []
    for body in traits_srv.counters.bodies:
        kinds.append(
            "format" if "response_format" in body else "tools" if "tools" in body else "prompt"
        )
    return kinds


@pytest.mark.parametrize(
    ("where", "style"), [({"model": LLAMA}, "json_schema"), ({"endpoint": True}, "json_object")]
)
def test_native_form_first(traits_srv: ServerHandle, where: dict[str, object], style: str) -> None:
    kwargs = (
        {"endpoint_url": traits_srv.url}
        if "endpoint" in where
        else {"model": LLAMA, "router_url": traits_srv.url}
    )
    client = ChatClient(**kwargs, **fast())  # type: ignore[arg-type]
    answer = client.structured(ASK, CITY)
    assert (answer.form, answer.value()) == ("json_schema", EXPECTED)
    assert traits_srv.counters.bodies[-1]["response_format"]["type"] == style  # TGI's form to TGI


def test_a_server_without_response_format_gets_a_forced_tool_call_remembered(
    traits_srv: ServerHandle,
) -> None:
    client = ChatClient(NO_FORMAT, router_url=traits_srv.url, **fast())
    answer = client.structured(ASK, CITY)
    assert (answer.form, answer.value()) == ("function_calling", EXPECTED)
    assert sent(traits_srv) == ["format", "tools"]
    assert traits_srv.counters.bodies[-1]["tool_choice"] == {
        "type": "function",
        "function": {"name": "City"},
    }
    assert client.structured(ASK, CITY).form == "function_calling"
    assert sent(traits_srv) == ["format", "tools", "tools"]  # the refusal is remembered per client
    fresh = ChatClient(NO_FORMAT, router_url=traits_srv.url, **fast())
    fresh.structured(ASK, CITY)
    assert sent(traits_srv)[-2:] == ["format", "tools"]


def test_a_server_without_tools_either_is_prompted_and_a_bad_reply_keeps_its_text(
    traits_srv: ServerHandle,
) -> None:
    client = ChatClient(NO_FORMAT_NO_TOOLS, router_url=traits_srv.url, **fast())
    answer = client.structured(ASK, CITY)
    assert answer.form == "json_mode"
    assert sent(traits_srv) == ["format", "tools", "prompt"]
    instruction = traits_srv.counters.bodies[-1]["messages"][0]
    assert instruction["role"] == "system"
    assert '"required":["city","population"]' in instruction["content"]
    # the extractive generator answers with a sentence of its prompt (here the schema itself),
    # not with the object: checked against the schema, it fails with its text attached
    with pytest.raises(StructuredOutputError, match="does not match the schema") as caught:
        validated(dict(CITY.schema), answer.text)
    assert caught.value.raw == answer.output.text


def test_a_form_named_is_the_only_one_tried(traits_srv: ServerHandle) -> None:
    client = ChatClient(NO_FORMAT, router_url=traits_srv.url, **fast())
    with pytest.raises(InvalidRequestError, match="response_format"):
        client.structured(ASK, CITY, form="json_schema")
    assert sent(traits_srv) == ["format"]


def test_a_bad_input_is_not_taken_for_a_missing_feature(traits_srv: ServerHandle) -> None:
    bad = InvalidRequestError("Input validation error: `max_tokens` too large", status=422)
    assert not refuses(bad, "json_schema")
    said = InvalidRequestError(
        "Failed to deserialize the JSON body into the target type: response_format: unknown "
        "variant `json_schema`, expected `json` or `regex`",
        status=422,
    )
    assert refuses(said, "json_schema")
    assert not refuses(said, "function_calling")


def test_a_reply_that_is_not_json_raises_with_the_raw_text() -> None:
    from hfrag.tasks.structured import parse_object

    with pytest.raises(StructuredOutputError) as caught:
        parse_object("Paris, I think")
    assert caught.value.raw == "Paris, I think"
    assert parse_object('```json\n{"a": 1}\n```') == {"a": 1}
    with pytest.raises(StructuredOutputError, match="not an object"):
        parse_object("[1, 2]")
