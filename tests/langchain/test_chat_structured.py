"""LangChain ``with_structured_output`` on a server with native support and on ones without.

Each schema kind (pydantic, TypedDict, JSON schema), with and without ``include_raw``; the
server without ``response_format`` is answered by a forced tool call, the one without tools
either by JSON-mode prompting, whose reply does not validate (an output-parsing error that
carries the raw text).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.exceptions import OutputParserException
from pydantic import BaseModel
from typing_extensions import TypedDict

from hfrag.langchain import ChatHuggingFaceInference
from hfrag.server.testing import ServerHandle
from tests.llm import LLAMA, NO_FORMAT, NO_FORMAT_NO_TOOLS, traits_server, traits_srv

__all__ = ["traits_server", "traits_srv"]  # fixtures

ASK = "city: Paris, population is 2100000"
EXPECTED = {"city": "Paris", "population": 2100000}


class City(BaseModel):
    """A city."""

    city: str
    population: int


class CityDict(TypedDict):
    """A city."""

    city: str
    population: int


CITY_SCHEMA = City.model_json_schema()
SCHEMAS = [City, CityDict, CITY_SCHEMA]


def as_dict(value: Any) -> dict[str, Any]:
    return value.model_dump() if isinstance(value, BaseModel) else dict(value)


@pytest.mark.parametrize("schema", SCHEMAS, ids=["pydantic", "typeddict", "json-schema"])
@pytest.mark.parametrize(
    ("model", "form"), [(LLAMA, "json_schema"), (NO_FORMAT, "function_calling")]
)
def test_each_schema_kind_natively_and_by_fallback(
    traits_srv: ServerHandle, model: str, form: str, schema: Any
) -> None:
    chat = ChatHuggingFaceInference(model=model, router_url=traits_srv.url)
    structured = chat.with_structured_output(schema)
    value = structured.invoke(ASK)
    assert isinstance(value, City if schema is City else dict)
    assert as_dict(value) == EXPECTED
    assert as_dict(asyncio.run(structured.ainvoke(ASK))) == EXPECTED
    streamed = list(structured.stream(ASK))
    assert as_dict(streamed[-1]) == EXPECTED
    raw = chat.with_structured_output(schema, include_raw=True).invoke(ASK)
    assert raw["parsing_error"] is None
    assert as_dict(raw["parsed"]) == EXPECTED
    assert raw["raw"].response_metadata["structured_output_form"] == form


def test_the_native_form_carries_strict(traits_srv: ServerHandle) -> None:
    chat = ChatHuggingFaceInference(model=LLAMA, router_url=traits_srv.url)
    chat.with_structured_output(City, strict=True).invoke(ASK)
    spec = traits_srv.counters.bodies[-1]["response_format"]["json_schema"]
    assert (spec["name"], spec["strict"]) == ("City", True)


@pytest.mark.parametrize("schema", SCHEMAS, ids=["pydantic", "typeddict", "json-schema"])
def test_a_reply_that_does_not_validate_raises_with_the_raw_text(
    traits_srv: ServerHandle, schema: Any
) -> None:
    chat = ChatHuggingFaceInference(model=NO_FORMAT_NO_TOOLS, router_url=traits_srv.url)
    with pytest.raises(OutputParserException) as caught:
        chat.with_structured_output(schema).invoke(ASK)
    assert caught.value.llm_output
    assert caught.value.llm_output in str(caught.value)
    raw = chat.with_structured_output(schema, include_raw=True).invoke(ASK)
    assert raw["parsed"] is None
    assert isinstance(raw["parsing_error"], OutputParserException)
    assert raw["raw"].response_metadata["structured_output_form"] == "json_mode"
    assert raw["raw"].content == raw["parsing_error"].llm_output


def test_function_calling_is_only_the_tool_call(traits_srv: ServerHandle) -> None:
    chat = ChatHuggingFaceInference(model=LLAMA, router_url=traits_srv.url)
    value = chat.with_structured_output(City, method="function_calling").invoke(ASK)
    assert value == City(**EXPECTED)
    assert "response_format" not in traits_srv.counters.bodies[-1]
    assert traits_srv.counters.bodies[-1]["tool_choice"]["function"]["name"] == "City"
