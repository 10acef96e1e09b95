"""LlamaIndex ``structured_predict`` and ``as_structured_llm``: native form, then fallbacks."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.llms import ChatMessage
from llama_index.core.prompts import PromptTemplate
from pydantic import BaseModel

from hfrag.llama_index import HuggingFaceInferenceLLM
from hfrag.server.testing import ServerHandle
from hfrag.tasks import StructuredOutputError
from tests.llm import LLAMA, NO_FORMAT, NO_FORMAT_NO_TOOLS, traits_server, traits_srv

__all__ = ["traits_server", "traits_srv"]  # fixtures

PROMPT = PromptTemplate("city: {city}, population is {population}")


class City(BaseModel):
    """A city."""

    city: str
    population: int


EXPECTED = City(city="Paris", population=2100000)


def kinds(traits_srv: ServerHandle) -> list[str]:
    return [
        "format" if "response_format" in b else "tools" if "tools" in b else "prompt"
        for b in traits_srv.counters.bodies
    ]


@pytest.mark.parametrize(
    ("model", "asked"), [(LLAMA, ["format"]), (NO_FORMAT, ["format", "tools"])]
)
def test_structured_predict_natively_and_by_fallback(
    traits_srv: ServerHandle, model: str, asked: list[str]
) -> None:
    llm = HuggingFaceInferenceLLM(model=model, router_url=traits_srv.url)
    assert llm.structured_predict(City, PROMPT, city="Paris", population="2100000") == EXPECTED
    assert kinds(traits_srv) == asked
    coroutine = llm.astructured_predict(City, PROMPT, city="Paris", population="2100000")
    assert asyncio.run(coroutine) == EXPECTED
    assert kinds(traits_srv)[-1] == asked[-1]  # the fallback is remembered


@pytest.mark.parametrize("model", [LLAMA, NO_FORMAT])
def test_as_structured_llm(traits_srv: ServerHandle, model: str) -> None:
    llm = HuggingFaceInferenceLLM(model=model, router_url=traits_srv.url).as_structured_llm(City)
    response = llm.chat([ChatMessage(role="user", content="city: Paris, population is 2100000")])
    assert response.raw == EXPECTED
    assert City.model_validate_json(response.message.content or "") == EXPECTED


def test_a_reply_that_does_not_validate_raises_with_the_raw_text(traits_srv: ServerHandle) -> None:
    llm = HuggingFaceInferenceLLM(model=NO_FORMAT_NO_TOOLS, router_url=traits_srv.url)
    with pytest.raises(StructuredOutputError) as caught:
        llm.structured_predict(City, PROMPT, city="Paris", population="2100000")
    assert kinds(traits_srv) == ["format", "tools", "prompt"]
    assert caught.value.raw
    assert isinstance(caught.value, ValueError)
