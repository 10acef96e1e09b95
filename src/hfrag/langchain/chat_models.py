"""LangChain ``BaseChatModel`` over Hugging Face chat completions: fields, docstrings, calls.

Wire work (bodies, streams, tool-call deltas, stop trimming, retries) is the task client's
(:class:`hfrag.tasks.ChatClient`); the fields are declared once in :mod:`hfrag._fields`. This
module converts LangChain messages and tools to the OpenAI shapes and answers back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from operator import itemgetter
from typing import Any, ClassVar, Literal, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    convert_to_openai_messages,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from pydantic import ConfigDict

from hfrag._fields import ADAPTER_CONFIG
from hfrag._fields.structured import spec_for
from hfrag.langchain._generation import LangChainGenerationFields
from hfrag.langchain._structured import as_chunk, parse_structured
from hfrag.tasks import (
    Finish,
    GenerationOutput,
    LogprobsDelta,
    ReasoningDelta,
    StructuredAnswer,
    TextDelta,
    TokenLogprob,
    ToolCallDelta,
    Usage,
)

__all__ = ["ChatHuggingFaceInference"]

#: Call keyword arguments that go into the request body as they are.
_BODY_ARGS = ("tools", "tool_choice", "response_format")


def usage_metadata(usage: Usage | None) -> UsageMetadata | None:
    """LangChain's usage dict from the server's counts (None when it sent none)."""
    if usage is None or (usage.prompt_tokens is None and usage.completion_tokens is None):
        return None
    prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
    total = usage.total_tokens if usage.total_tokens is not None else prompt + completion
    counts: dict[str, Any] = {
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": total,
    }
    if usage.reasoning_tokens is not None:
        counts["output_token_details"] = {"reasoning": usage.reasoning_tokens}
    # A cast, not a UsageMetadata(...) call: langchain-core >= 1.8 marks its optional keys with
    # typing.NotRequired, which a type check for Python 3.10 cannot see, and so asks for them.
    return cast(UsageMetadata, counts)


def logprobs_metadata(tokens: Sequence[TokenLogprob]) -> dict[str, Any]:
    """``response_metadata["logprobs"]`` as ChatOpenAI fills it (the OpenAI choice's object)."""
    return {"content": [t.as_openai() for t in tokens], "refusal": None}


def _history(messages: list[BaseMessage], converted: list[dict[str, Any]]) -> None:
    """Give assistant turns their reasoning (``additional_kwargs["reasoning_content"]``), which
    ``convert_to_openai_messages`` drops; the chat client sends it only if ``send_reasoning``."""
    if len(messages) != len(converted):
        return
    for message, wire in zip(messages, converted, strict=True):
        reasoning = message.additional_kwargs.get("reasoning_content")
        if isinstance(message, AIMessage) and isinstance(reasoning, str) and reasoning:
            wire["reasoning_content"] = reasoning


def _tool_choice(choice: Any) -> Any:
    if choice is True or choice == "any":
        return "required"
    if choice is False:
        return "none"
    if isinstance(choice, str) and choice not in ("auto", "none", "required"):
        return {"type": "function", "function": {"name": choice}}
    return choice


def _message(out: GenerationOutput, model_name: str) -> AIMessage:
    calls, invalid = [], []
    for call in out.tool_calls:
        if call.arguments is None:
            invalid.append(
                invalid_tool_call(
                    name=call.name,
                    args=call.raw_arguments,
                    id=call.id,
                    error="arguments are not a JSON object",
                )
            )
        else:
            calls.append(tool_call(name=call.name, args=call.arguments, id=call.id))
    metadata: dict[str, Any] = {
        "finish_reason": out.finish_reason,
        "model_name": out.model or model_name,
        "model_provider": "huggingface",
    }
    if out.logprobs is not None:
        metadata["logprobs"] = logprobs_metadata(out.logprobs)
    extra = {"reasoning_content": out.reasoning} if out.reasoning is not None else {}
    return AIMessage(
        content=out.text,
        additional_kwargs=extra,
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata=usage_metadata(out.usage),
        response_metadata=metadata,
    )


class ChatHuggingFaceInference(LangChainGenerationFields, BaseChatModel):
    """A chat model on the Hugging Face router (any provider) or any OpenAI-compatible endpoint.

    Give ``model`` (a Hub model id; ``provider`` picks a provider such as ``"together"`` or a
    policy such as ``"fastest"``) or ``endpoint_url`` (TGI, vLLM, llama.cpp, an Inference
    Endpoint). Tool calling (``bind_tools`` with pydantic classes, functions, dicts or tools),
    ``with_structured_output`` (``json_schema``, ``function_calling``, ``json_mode``), streaming
    with tool-call chunks, usage and finish reasons all work; sync methods are safe inside a
    running event loop.

    Example::

        from hfrag.langchain import ChatHuggingFaceInference

        chat = ChatHuggingFaceInference(
            model="meta-llama/Llama-3.1-8B-Instruct", provider="fastest", max_tokens=200
        )
        chat.invoke("Where is Paris?").content
        # or: ChatHuggingFaceInference(endpoint_url="http://127.0.0.1:8082")
    """

    #: ``ChatHuggingFaceInference(llm=HuggingFaceInferenceLLM(...))`` takes the LLM's settings.
    takes_llm: ClassVar[bool] = True

    # Declared here, not only in the mixin: pydantic merges base configs in MRO order, and
    # LangChain's base would otherwise turn extra="forbid" back into "ignore".
    model_config = ConfigDict(**ADAPTER_CONFIG, arbitrary_types_allowed=True)
    _ls_model_type: ClassVar[Literal["chat", "llm"]] = "chat"

    @property
    def _llm_type(self) -> str:
        return "huggingface-inference-chat"

    # -- requests -------------------------------------------------------------------------------

    def _call_args(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        kwargs = dict(kwargs)
        kwargs.pop("ls_structured_output_format", None)
        kwargs.pop("stream", None)
        body = {name: kwargs.pop(name) for name in _BODY_ARGS if name in kwargs}
        if "tool_choice" in body:
            body["tool_choice"] = _tool_choice(body["tool_choice"])
        options = self.generation_options()
        extra = {**options.model_kwargs, **kwargs}
        if extra != dict(options.model_kwargs):
            options = replace(options, model_kwargs=extra)
        converted = convert_to_openai_messages(messages)
        wire = converted if isinstance(converted, list) else [converted]
        _history(messages, wire)
        return {
            "messages": wire,
            "stop": stop,
            "options": options,
            **body,
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if "structured_output" in kwargs:
            return self._structured(messages, stop, kwargs)
        if self.streaming:
            return _from_chunks(self._stream(messages, stop, run_manager, **kwargs))
        out = self.chat_client().chat(**self._call_args(messages, stop, kwargs))
        return ChatResult(generations=[ChatGeneration(message=_message(out, self._name()))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if "structured_output" in kwargs:
            return await self._astructured(messages, stop, kwargs)
        if self.streaming:
            chunks = [c async for c in self._astream(messages, stop, run_manager, **kwargs)]
            return _from_chunks(chunks)
        out = await self.chat_client().achat(**self._call_args(messages, stop, kwargs))
        return ChatResult(generations=[ChatGeneration(message=_message(out, self._name()))])

    def _name(self) -> str:
        return self._target_name()

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        if "structured_output" in kwargs:
            yield as_chunk(self._structured(messages, stop, kwargs))
            return
        stream = self.chat_client().stream_chat(**self._call_args(messages, stop, kwargs))
        converter = _ChunkConverter(str(kwargs.get("model") or self._name()))
        # LangChain reports each chunk to the callbacks itself (it passes no run_manager here).
        for item in stream:
            chunk = converter.convert(item)
            if chunk is not None:
                yield chunk
        yield converter.last()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        if "structured_output" in kwargs:
            yield as_chunk(await self._astructured(messages, stop, kwargs))
            return
        stream = self.chat_client().astream_chat(**self._call_args(messages, stop, kwargs))
        converter = _ChunkConverter(str(kwargs.get("model") or self._name()))
        try:
            async for item in stream:
                chunk = converter.convert(item)
                if chunk is not None:
                    yield chunk
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        yield converter.last()

    # -- tools and structured output ------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (pydantic classes, functions, LangChain tools or OpenAI dicts).

        ``tool_choice``: ``"auto"``, ``"none"``, ``"required"`` (also ``"any"`` or True), or a
        tool name to force that tool. ``strict`` goes into each function definition.
        """
        formatted = [convert_to_openai_tool(t, strict=strict) for t in tools]
        if tool_choice is not None and tool_choice is not False:
            kwargs["tool_choice"] = _tool_choice(tool_choice)
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """A runnable answering with ``schema`` (pydantic class, TypedDict or JSON schema).

        ``json_schema`` (default) sends ``response_format`` in the server's form (TGI's to TGI
        endpoints); when the server answers that it does not take ``response_format``, the
        same request is a forced call to a tool made from the schema, and if it takes no tools
        either, the schema goes in a system instruction (the step that worked is remembered).
        ``function_calling`` forces the tool call only; ``json_mode`` asks for any JSON object
        (describe the keys in the prompt). Pydantic schemas come back as instances, others as
        dicts; an answer that does not match raises ``OutputParserException`` with the raw text
        (``llm_output``), or, with ``include_raw=True``, comes back as ``parsing_error``.
        ``response_metadata["structured_output_form"]`` says which form answered.
        """
        if kwargs:
            raise ValueError(f"unexpected arguments: {sorted(kwargs)}")
        if method not in ("json_schema", "function_calling", "json_mode"):
            raise ValueError(
                f"method must be 'json_schema', 'function_calling' or 'json_mode', got {method!r}"
            )
        spec = spec_for(schema, strict, schema=convert_to_json_schema(schema))
        traced = {"kwargs": {"method": method}, "schema": schema}
        llm: Runnable[LanguageModelInput, Any]
        if method == "json_mode":
            llm = self.bind(
                response_format={"type": "json_object"}, ls_structured_output_format=traced
            )
        else:
            form = "auto" if method == "json_schema" else "function_calling"
            llm = self.bind(structured_output=(spec, form), ls_structured_output_format=traced)
        parser = RunnableLambda(partial(parse_structured, schema, dict(spec.schema)))
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        failed = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([failed], exception_key="parsing_error")

    def _structured(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> ChatResult:
        spec, form = kwargs.pop("structured_output")
        args = self._call_args(messages, stop, kwargs)
        options = args["options"].merged(stop=stop)
        answer = self.chat_client().structured(args["messages"], spec, form=form, options=options)
        return _structured_result(answer, self._name())

    async def _astructured(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> ChatResult:
        spec, form = kwargs.pop("structured_output")
        args = self._call_args(messages, stop, kwargs)
        options = args["options"].merged(stop=stop)
        client = self.chat_client()
        answer = await client.astructured(args["messages"], spec, form=form, options=options)
        return _structured_result(answer, self._name())


def _structured_result(answer: StructuredAnswer, model_name: str) -> ChatResult:
    message = _message(answer.output, model_name)
    message.response_metadata["structured_output_form"] = answer.form
    return ChatResult(generations=[ChatGeneration(message=message)])


class _ChunkConverter:
    """Typed chunks to LangChain message chunks; the finish and usage go on the last one."""

    def __init__(self, model_name: str) -> None:
        self._model_name = model_name
        self._finish: Finish | None = None
        self._usage: Usage | None = None

    def convert(self, item: Any) -> ChatGenerationChunk | None:
        if isinstance(item, TextDelta):
            return ChatGenerationChunk(message=AIMessageChunk(content=item.text))
        if isinstance(item, ReasoningDelta):
            extra = {"reasoning_content": item.text}
            return ChatGenerationChunk(message=AIMessageChunk(content="", additional_kwargs=extra))
        if isinstance(item, LogprobsDelta):
            metadata = {"logprobs": logprobs_metadata(item.tokens)}
            return ChatGenerationChunk(
                message=AIMessageChunk(content="", response_metadata=metadata)
            )
        if isinstance(item, ToolCallDelta):
            part = tool_call_chunk(
                name=item.name, args=item.arguments, id=item.id, index=item.index
            )
            return ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[part]))
        if isinstance(item, Finish):
            self._finish = item
        elif isinstance(item, Usage):
            self._usage = item
        return None

    def last(self) -> ChatGenerationChunk:
        metadata: dict[str, Any] = {
            "finish_reason": self._finish.reason if self._finish else None,
            "model_name": (self._finish.model if self._finish else None) or self._model_name,
            "model_provider": "huggingface",
        }
        message = AIMessageChunk(
            content="",
            usage_metadata=usage_metadata(self._usage),
            response_metadata=metadata,
            chunk_position="last",
        )
        return ChatGenerationChunk(
            message=message, generation_info={"finish_reason": metadata["finish_reason"]}
        )


def _from_chunks(chunks: Iterator[ChatGenerationChunk] | list[ChatGenerationChunk]) -> ChatResult:
    merged: ChatGenerationChunk | None = None
    for chunk in chunks:
        merged = chunk if merged is None else merged + chunk
    assert merged is not None  # the converter always yields a last chunk
    chunk_message = merged.message
    message = AIMessage(
        content=chunk_message.content,
        additional_kwargs=chunk_message.additional_kwargs,
        tool_calls=getattr(chunk_message, "tool_calls", []),
        invalid_tool_calls=getattr(chunk_message, "invalid_tool_calls", []),
        usage_metadata=getattr(chunk_message, "usage_metadata", None),
        response_metadata=chunk_message.response_metadata,
        id=chunk_message.id,
    )
    return ChatResult(generations=[ChatGeneration(message=message)])
