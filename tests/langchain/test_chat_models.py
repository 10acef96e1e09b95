"""The LangChain chat model and LLM on the local server: layouts, streaming, tools, structure."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.tools import tool
from langchain_core.vectorstores import InMemoryVectorStore
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from hfrag.errors import BackendError, ConfigurationError
from hfrag.langchain import (
    ChatHuggingFaceInference,
    HuggingFaceInferenceEmbeddings,
    HuggingFaceInferenceLLM,
)
from hfrag.server import FaultConfig
from hfrag.server.testing import ServerHandle
from tests.adapters import PLANTED
from tests.llm import ANSWER, LLAMA, PROMPT, llm_config, llm_server, srv
from tests.sockets import open_connections
from tests.transport.conftest import eventually

__all__ = ["llm_server", "srv"]  # fixtures

CHAT = "/v1/chat/completions"


@pytest.fixture(params=["router", "tgi", "chat"])
def layout(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def where(layout: str, url: str) -> dict[str, Any]:
    if layout == "router":
        return {"model": LLAMA, "router_url": url, "provider": "fastest"}
    return {"endpoint_url": url if layout == "tgi" else url + "/v1"}


def merged(chunks: Any) -> Any:
    full = None
    for chunk in chunks:
        full = chunk if full is None else full + chunk
    return full


@tool
def get_weather(location: str) -> str:
    """Get the weather at a location."""
    return "It's sunny."


def magic_function(input: int) -> int:
    """Apply a magic function to an input."""
    return input + 2


class Joke(BaseModel):
    """A joke."""

    setup: str = Field(description="the question")
    punchline: str
    rating: int | None = None


class JokeDict(TypedDict):
    """A joke."""

    setup: str
    punchline: str


class Tokens(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)


# -- chat model -------------------------------------------------------------------------------


def test_invoke_and_stream_on_every_layout(srv: ServerHandle, layout: str) -> None:
    chat = ChatHuggingFaceInference(**where(layout, srv.url))
    messages = [SystemMessage("Answer from the context."), HumanMessage(PROMPT)]
    result = chat.invoke(messages)
    assert result.content == ANSWER
    assert result.response_metadata["finish_reason"] == "stop"
    assert result.response_metadata["model_name"] == LLAMA
    assert result.usage_metadata is not None
    assert result.usage_metadata["output_tokens"] == 6
    body = srv.counters.bodies[-1]
    assert body["messages"][0] == {"role": "system", "content": "Answer from the context."}
    if layout == "router":
        assert body["model"] == f"{LLAMA}:fastest"
    chunks = list(chat.stream(messages))
    assert len(chunks) > 3
    full = merged(chunks)
    assert full.content == result.content
    assert full.usage_metadata == result.usage_metadata
    assert full.response_metadata["finish_reason"] == "stop"
    assert asyncio.run(chat.ainvoke(messages)).content == ANSWER

    async def astream() -> Any:
        return merged([c async for c in chat.astream(messages)])

    assert asyncio.run(astream()).content == ANSWER


def test_content_as_a_list_of_parts(srv: ServerHandle) -> None:
    chat = ChatHuggingFaceInference(endpoint_url=srv.url)
    # Text-only parts are joined into one string, the form every server accepts ...
    assert chat.invoke([HumanMessage(content=[{"type": "text", "text": PROMPT}])]).content == ANSWER
    assert srv.counters.bodies[-1]["messages"] == [{"role": "user", "content": PROMPT}]
    # ... and parts that are not all text are sent as OpenAI parts.
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    parts = [{"type": "text", "text": PROMPT}, image]
    assert chat.invoke([HumanMessage(content=parts)]).content == ANSWER
    assert srv.counters.bodies[-1]["messages"] == [{"role": "user", "content": parts}]


def test_stop_sequences_from_the_field_and_the_call(srv: ServerHandle, layout: str) -> None:
    chat = ChatHuggingFaceInference(**where(layout, srv.url), stop=["capital"])
    assert chat.invoke(PROMPT).content == "Paris is the "
    assert merged(chat.stream(PROMPT)).content == "Paris is the "
    plain = ChatHuggingFaceInference(**where(layout, srv.url))
    assert plain.invoke(PROMPT, stop=["France"]).content == "Paris is the capital of "


def test_streaming_field_streams_invoke_and_callbacks_see_each_token(srv: ServerHandle) -> None:
    handler = Tokens()
    chat = ChatHuggingFaceInference(endpoint_url=srv.url, streaming=True, callbacks=[handler])
    result = chat.invoke(PROMPT)
    assert result.content == ANSWER
    assert result.usage_metadata is not None
    assert "".join(handler.tokens) == ANSWER
    assert len([t for t in handler.tokens if t]) == 6  # one per token, not the whole at once
    assert srv.counters.bodies[-1]["stream"] is True
    assert asyncio.run(chat.ainvoke(PROMPT)).content == ANSWER


def test_bind_tools_with_pydantic_functions_dicts_and_tools(srv: ServerHandle, layout: str) -> None:
    class GetPopulation(BaseModel):
        """Get the population of a city."""

        city: str

    as_dict = {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The time in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    chat = ChatHuggingFaceInference(**where(layout, srv.url))
    bound = chat.bind_tools([GetPopulation, magic_function, as_dict, get_weather])
    text = "population of Paris, the weather there, and magic_function(4); what time is it?"
    result = bound.invoke(text)
    assert [(c["name"], c["args"]) for c in result.tool_calls] == [
        ("GetPopulation", {"city": text}),
        ("magic_function", {"input": 4}),
        ("get_time", {}),  # "time" names it; its only property is optional
        ("get_weather", {"location": text}),
    ]
    names = [t["function"]["name"] for t in srv.counters.bodies[-1]["tools"]]
    assert names == ["GetPopulation", "magic_function", "get_time", "get_weather"]
    assert result.response_metadata["finish_reason"] == "tool_calls"
    streamed = merged(bound.stream(text))
    assert isinstance(streamed, AIMessageChunk)
    assert [(c["name"], c["args"]) for c in streamed.tool_calls] == [
        (c["name"], c["args"]) for c in result.tool_calls
    ]
    assert len(streamed.tool_call_chunks) == len(result.tool_calls)


def test_tool_choice_values(srv: ServerHandle) -> None:
    chat = ChatHuggingFaceInference(endpoint_url=srv.url)
    for choice, expected in [
        ("any", "required"),
        (True, "required"),
        ("magic_function", {"type": "function", "function": {"name": "magic_function"}}),
        ("auto", "auto"),
    ]:
        chat.bind_tools([magic_function, get_weather], tool_choice=choice).invoke("Hello!")
        assert srv.counters.bodies[-1]["tool_choice"] == expected


def test_an_agent_loop_round_trip(srv: ServerHandle) -> None:
    chat = ChatHuggingFaceInference(endpoint_url=srv.url).bind_tools([get_weather])
    question = HumanMessage("What is the weather in Paris?")
    call = chat.invoke([question])
    assert len(call.tool_calls) == 1
    result = get_weather.invoke(call.tool_calls[0])
    answer = chat.invoke([question, call, result])
    assert isinstance(answer, AIMessage)
    assert answer.tool_calls == []
    sent = srv.counters.bodies[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["id"] == call.tool_calls[0]["id"]
    assert sent[2]["tool_call_id"] == call.tool_calls[0]["id"]


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
@pytest.mark.parametrize("schema", [Joke, JokeDict])
def test_with_structured_output(srv: ServerHandle, layout: str, method: str, schema: Any) -> None:
    chat = ChatHuggingFaceInference(**where(layout, srv.url))
    structured = chat.with_structured_output(schema, method=method)  # type: ignore[arg-type]
    text = "setup: Why did the cat sit on the computer? punchline: To keep an eye on the mouse"
    expected = {
        "setup": "Why did the cat sit on the computer? punchline: To keep an eye on the mouse",
        "punchline": "To keep an eye on the mouse",
    }
    result = structured.invoke(text)
    if schema is Joke:
        assert result == Joke(**expected)
    else:
        assert result == expected
    assert asyncio.run(structured.ainvoke(text)) == result
    assert list(structured.stream(text))[-1] == result
    body = srv.counters.bodies[-1]
    if method == "json_schema":
        assert "response_format" in body
    else:
        assert body["tool_choice"]["function"]["name"] == schema.__name__


def test_structured_output_include_raw_and_parse_errors(srv: ServerHandle) -> None:
    chat = ChatHuggingFaceInference(endpoint_url=srv.url)
    out = chat.with_structured_output(Joke, include_raw=True).invoke("setup: a, punchline: b")
    assert out["parsed"] == Joke(setup="a", punchline="b")
    assert out["parsing_error"] is None
    assert isinstance(out["raw"], AIMessage)

    class Strict(BaseModel):
        count: int = Field(ge=10)

    bad = chat.with_structured_output(Strict, include_raw=True).invoke("count: 3")
    assert bad["parsed"] is None
    assert bad["parsing_error"] is not None


def test_error_event_inside_a_stream_raises_the_typed_error(srv: ServerHandle) -> None:
    srv.set_faults(FaultConfig(p_stream_error=1.0))
    chat = ChatHuggingFaceInference(endpoint_url=srv.url, max_retries=0)
    with pytest.raises(BackendError):
        list(chat.stream(PROMPT))
    assert eventually(lambda: srv.counters.total(CHAT) == 1)


def test_fields_are_validated_and_secrets_stay_secret(srv: ServerHandle) -> None:
    with pytest.raises(ConfigurationError):
        ChatHuggingFaceInference(endpoint_url=srv.url, temperature=-1)
    with pytest.raises(ConfigurationError):
        ChatHuggingFaceInference(endpoint_url=srv.url, tempurature=0.5)  # a typo
    with pytest.raises(ConfigurationError):
        ChatHuggingFaceInference(endpoint_url=srv.url, provider="together")
    chat = ChatHuggingFaceInference(
        model=LLAMA, router_url=srv.url, api_key=PLANTED, max_tokens=5, model_kwargs={"n": 1}
    )
    assert chat.max_new_tokens == 5
    assert PLANTED not in repr(chat)
    assert PLANTED not in dumps(chat)
    chat.invoke(PROMPT)
    assert srv.counters.bodies[-1]["max_tokens"] == 5
    assert srv.counters.bodies[-1]["n"] == 1
    assert srv.counters.headers[-1]["authorization"] == f"Bearer {PLANTED}"


def test_a_changed_field_rebuilds_the_client(srv: ServerHandle) -> None:
    chat = ChatHuggingFaceInference(endpoint_url=srv.url)
    first = chat.chat_client()
    chat.temperature = 0.5
    assert chat.chat_client() is not first
    chat.invoke(PROMPT)
    assert srv.counters.bodies[-1]["temperature"] == 0.5


# -- LLM --------------------------------------------------------------------------------------


def test_llm_on_every_layout(srv: ServerHandle, layout: str) -> None:
    llm = HuggingFaceInferenceLLM(**where(layout, srv.url))
    assert llm.invoke(PROMPT) == ANSWER
    posted = srv.counters.bodies[-1]
    assert ("inputs" in posted) == (layout == "tgi")  # TGI: /generate; others: chat
    assert "".join(llm.stream(PROMPT)) == ANSWER
    assert asyncio.run(llm.ainvoke(PROMPT)) == ANSWER

    async def astream() -> str:
        return "".join([c async for c in llm.astream(PROMPT)])

    assert asyncio.run(astream()) == ANSWER
    result = llm.generate([PROMPT, "Rome is in Italy. Where is Rome?"])
    assert [g[0].text for g in result.generations] == [ANSWER, "Rome is in Italy."]
    info = result.generations[0][0].generation_info
    assert info is not None
    assert info["finish_reason"] == "stop"
    assert info["token_usage"]["completion_tokens"] > 0
    assert asyncio.run(llm.abatch([PROMPT, PROMPT])) == [ANSWER, ANSWER]


def test_llm_tasks_stops_and_streaming_field(srv: ServerHandle) -> None:
    llm = HuggingFaceInferenceLLM(model=LLAMA, router_url=srv.url, task="text-generation")
    assert llm.invoke(PROMPT, stop=["capital"]) == "Paris is the "
    assert srv.counters.bodies[-1]["parameters"]["stop"] == ["capital"]
    handler = Tokens()
    streaming = HuggingFaceInferenceLLM(
        endpoint_url=srv.url, streaming=True, callbacks=[handler], max_new_tokens=3
    )
    assert streaming.invoke(PROMPT) == "Paris is the"
    assert handler.tokens == ["Paris", " is", " the"]
    assert srv.counters.bodies[-1]["parameters"]["max_new_tokens"] == 3
    with pytest.raises(ConfigurationError):
        HuggingFaceInferenceLLM(endpoint_url=srv.url, task="summarization")
    with pytest.raises(ConfigurationError):
        HuggingFaceInferenceLLM(endpoint_url=srv.url, max_new_token=5)  # a typo


# -- a RAG chain ------------------------------------------------------------------------------


def test_lcel_rag_chain_end_to_end(srv: ServerHandle) -> None:
    facts = [
        "The Eiffel Tower is in Paris.",
        "Mount Fuji is the highest mountain in Japan.",
        "The Danube flows through Vienna and Budapest.",
    ]
    embeddings = HuggingFaceInferenceEmbeddings(model="hfrag/hash-embed", router_url=srv.url)
    store = InMemoryVectorStore.from_documents([Document(f) for f in facts], embeddings)
    retriever = store.as_retriever(search_kwargs={"k": 2})
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "Answer from the context only."),
            ("human", "Context:\n{context}\n\nQuestion: {question}"),
        ]
    )

    def join(docs: list[Document]) -> str:
        return "\n".join(d.page_content for d in docs)

    chat = ChatHuggingFaceInference(model=LLAMA, router_url=srv.url, provider="fastest")
    chain = (
        {"context": retriever | join, "question": RunnablePassthrough()}
        | prompt
        | chat
        | StrOutputParser()
    )
    question = "What is the highest mountain in Japan?"
    assert chain.invoke(question) == "Mount Fuji is the highest mountain in Japan."
    assert "".join(chain.stream(question)) == "Mount Fuji is the highest mountain in Japan."
    assert asyncio.run(chain.ainvoke(question)) == "Mount Fuji is the highest mountain in Japan."
    sent = srv.counters.bodies[-1]["messages"][1]["content"]
    assert "Mount Fuji" in sent  # the retrieved context reached the model


def test_leaving_a_stream_early_closes_its_connection(make_server: Any) -> None:
    server = make_server(llm_config(primary=LLAMA))
    server.set_faults(FaultConfig(token_delay=0.05))
    chat = ChatHuggingFaceInference(endpoint_url=server.url)
    llm = HuggingFaceInferenceLLM(endpoint_url=server.url)
    llm.text_generation_client().wire()  # its one GET /info, on a pooled keep-alive connection
    baseline = open_connections(server.port)
    for _ in chat.stream(PROMPT):
        assert open_connections(server.port) == baseline + 1
        break
    assert eventually(lambda: open_connections(server.port) == baseline)
    for _ in llm.stream(PROMPT):
        assert open_connections(server.port) == baseline + 1
        break
    assert eventually(lambda: open_connections(server.port) == baseline)

    async def leave_early() -> None:
        async for _ in chat.astream(PROMPT):
            assert open_connections(server.port) == baseline + 1
            break

    asyncio.run(leave_early())
    assert eventually(lambda: open_connections(server.port) == baseline)


def test_real_model_streams_token_by_token_the_same_answer() -> None:
    """SmolLM2 through the local server: ``.stream`` yields several chunks that add up to
    ``.invoke``'s answer at temperature 0 (skipped without the ``local`` extra's models)."""
    from hfrag.server import ServerConfig
    from hfrag.server.models_real import GENERATE_MODEL, missing_runtimes, real_models
    from hfrag.server.testing import serve_in_thread

    if missing_runtimes("int8"):
        pytest.skip("the local extra's models are not installed")
    specs = [s for s in real_models("int8") if s.name == GENERATE_MODEL]
    with serve_in_thread(ServerConfig(models=specs)) as server:
        chat = ChatHuggingFaceInference(
            model=GENERATE_MODEL, router_url=server.url, max_new_tokens=24, temperature=0.0
        )
        messages = [SystemMessage("You answer in one short sentence."), HumanMessage(PROMPT)]
        whole = chat.invoke(messages)
        chunks = list(chat.stream(messages))
    pieces = [c.text for c in chunks if c.text]
    assert len(pieces) > 5
    assert "".join(pieces) == whole.text
    assert whole.text.strip()
