"""LlamaIndex ``FunctionCallingLLM`` over Hugging Face hosted inference: fields, docs, client calls.

The wire work belongs to the task clients (:class:`hfrag.tasks.ChatClient`,
:class:`hfrag.tasks.TextGenerationClient`); the shared fields are declared once in
:mod:`hfrag._fields`. This module maps LlamaIndex calls onto them:

- ``complete``/``stream_complete`` (prompt in, text out) go through the text-generation client,
  which picks the wire form once (``task``): chat completions for router models and chat
  endpoints, TGI ``/generate`` for a TGI endpoint. ``is_chat_model`` says which it is.
- ``chat``/``stream_chat`` and the tool methods use chat completions whenever the target serves
  them (a TGI endpoint does too, even given as its ``/generate`` URL); only
  ``task="text-generation"`` or an endpoint without a chat route turns messages into one prompt
  with ``messages_to_prompt``.
- Async methods await the clients natively (never ``asyncio.run``); sync ones are safe inside a
  running event loop. Streams yield every delta as it arrives, then one final response with the
  finish reason and usage; leaving a stream early closes its connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from llama_index.core.base.llms.generic_utils import (
    messages_to_prompt as generic_messages_to_prompt,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection, default_completion_to_prompt
from llama_index.core.prompts import BasePromptTemplate
from pydantic import BaseModel, ConfigDict, Field

from hfrag._fields import ADAPTER_CONFIG, GenerationFields
from hfrag._fields.structured import spec_for, validated
from hfrag.errors import ConfigurationError, InferenceError
from hfrag.llama_index._messages import (
    message_tool_calls,
    tool_selections,
    tool_specs,
    wire_messages,
)
from hfrag.llama_index._responses import (
    ResponseStream,
    alast,
    astreamed,
    chat_response,
    completion_response,
    last,
    streamed,
)
from hfrag.tasks import GenerationOptions, StructuredSpec
from hfrag.tasks.chat import is_tgi_info

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["HuggingFaceInferenceLLM"]

Model = TypeVar("Model", bound=BaseModel)

#: Per-call keyword arguments passed to the chat client as they are.
_CHAT_ARGS = ("tools", "tool_choice", "response_format")
_ALIASES = {"max_tokens": "max_new_tokens", "stop_sequences": "stop"}


def _wire_tools(tools: Any) -> Any:
    """LlamaIndex tools in the OpenAI form; dicts pass as they are."""
    if tools is None or isinstance(tools, (str, bytes, dict)):
        return tools
    return [tool_specs([t])[0] if hasattr(t, "metadata") else t for t in tools]


def _positive(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return value if ok else None


class HuggingFaceInferenceLLM(GenerationFields, FunctionCallingLLM):
    """A LlamaIndex LLM on the Hugging Face router (any provider) or a TGI/OpenAI-compatible server.

    Give ``model`` (a Hub model id; ``provider`` picks a provider or a routing policy such as
    ``"fastest"``) or ``endpoint_url`` (TGI, vLLM, llama.cpp, an Inference Endpoint, or
    ``hfrag serve``). ``complete`` speaks text-generation where the target serves it (a TGI
    endpoint) and chat completions otherwise; ``chat``, ``chat_with_tools`` and
    ``predict_and_call`` use chat completions with tools in the OpenAI form. ``metadata`` reads
    the context window, output tokens and model name from a TGI endpoint's ``GET /info``
    (``max_total_tokens``, ``max_input_tokens``, ``model_id``) unless ``context_window`` and
    ``num_output`` are set. Per-call keyword arguments: ``stop``, ``tools``, ``tool_choice``,
    ``response_format``, and any generation option (``temperature``, ``max_tokens``...).

    Example::

        from llama_index.core.llms import ChatMessage
        from hfrag.llama_index import HuggingFaceInferenceLLM

        llm = HuggingFaceInferenceLLM(model="meta-llama/Llama-3.1-8B-Instruct",
                                      provider="fastest", max_new_tokens=256)
        # or: HuggingFaceInferenceLLM(endpoint_url="http://127.0.0.1:8082")
        print(llm.complete("Paris is the capital of France. Where is Paris?").text)
        for part in llm.stream_chat([ChatMessage(role="user", content="Hi")]):
            print(part.delta, end="")
    """

    model_config = ConfigDict(**ADAPTER_CONFIG, protected_namespaces=("pydantic_model_",))

    context_window: int | None = Field(
        default=None,
        gt=0,
        description=(
            "Tokens of prompt plus output the model takes; None: the endpoint's "
            f"max_total_tokens from GET /info, else {DEFAULT_CONTEXT_WINDOW}."
        ),
    )
    num_output: int | None = Field(
        default=None,
        gt=0,
        description=(
            "Tokens LlamaIndex reserves for the answer; None: max_new_tokens, else the "
            "endpoint's max_total_tokens - max_input_tokens, else "
            f"{DEFAULT_NUM_OUTPUTS}."
        ),
    )
    is_function_calling_model: bool = Field(
        default=True,
        description=(
            "Whether LlamaIndex may use tool calling (chat completions 'tools'); set False for "
            "a server without tool support. Always False with task='text-generation'."
        ),
    )

    @classmethod
    def class_name(cls) -> str:
        return "HuggingFaceInferenceLLM"

    # -- what the target speaks -------------------------------------------------------------------

    @property
    def metadata(self) -> LLMMetadata:
        """Context window, output tokens and name (from ``GET /info`` where the endpoint has
        it), whether prompts go as chat, and whether tools may be used."""
        client = self.text_generation_client()
        try:
            info, wire = client.endpoint_info(), client.wire()
        except InferenceError:  # unreachable now; the real call will say why
            info, wire = {}, "text-generation" if self.task == "text-generation" else "chat"
        if not is_tgi_info(info):
            # Generation metadata comes from a generation server's /info only, never from the
            # /info of an embedding or reranking model a shared server answers with.
            info = {}
        total = _positive(info.get("max_total_tokens"))
        prompt = _positive(info.get("max_input_tokens"))
        reserve = total - prompt if total and prompt and total > prompt else None
        name = info.get("model_id")
        return LLMMetadata(
            context_window=self.context_window or total or DEFAULT_CONTEXT_WINDOW,
            num_output=self.num_output or self.max_new_tokens or reserve or DEFAULT_NUM_OUTPUTS,
            is_chat_model=wire == "chat",
            is_function_calling_model=(
                self.is_function_calling_model and self.task != "text-generation"
            ),
            model_name=name if isinstance(name, str) and name else self._target_name(),
        )

    def _chat_wire(self, wire: str, info: dict[str, Any]) -> bool:
        if self.task != "auto":
            return self.task == "chat"
        return wire == "chat" or is_tgi_info(info)  # TGI serves chat too, even given /generate

    def _speaks_chat(self) -> bool:
        client = self.text_generation_client()
        return self.task == "chat" or self._chat_wire(client.wire(), client.endpoint_info())

    async def _aspeaks_chat(self) -> bool:
        client = self.text_generation_client()
        if self.task == "chat":
            return True
        return self._chat_wire(await client.awire(), await client.aendpoint_info())

    # -- per-call arguments -----------------------------------------------------------------------

    def _call_args(self, kwargs: dict[str, Any], chat: bool) -> dict[str, Any]:
        """Client keyword arguments from LlamaIndex's per-call ``kwargs``."""
        options = {_ALIASES.get(k, k): v for k, v in kwargs.items()}
        call: dict[str, Any] = {"stop": options.pop("stop", None)}
        passed = [k for k in _CHAT_ARGS if k in options]
        if passed and not chat:
            raise ConfigurationError(
                f"{passed} apply to chat completions: pass them to chat() or chat_with_tools(), "
                f"which use them unless task='text-generation' (here task={self.task!r})"
            )
        for name in passed:
            call[name] = options.pop(name)
        if "tools" in call:
            call["tools"] = _wire_tools(call["tools"])
        call["options"] = self.generation_options().merged(**options) if options else None
        return call

    def _prompt(self, messages: Sequence[ChatMessage]) -> str:
        return (self.messages_to_prompt or generic_messages_to_prompt)(messages)

    # -- chat -------------------------------------------------------------------------------------

    def _chat_chunks(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> Any:
        if self._speaks_chat():
            call = self._call_args(kwargs, chat=True)
            return self.chat_client().stream_chat(wire_messages(messages), **call)
        call = self._call_args(kwargs, chat=False)
        return self.text_generation_client().stream(self._prompt(messages), **call)

    async def _achat_chunks(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> Any:
        if await self._aspeaks_chat():
            call = self._call_args(kwargs, chat=True)
            return self.chat_client().astream_chat(wire_messages(messages), **call)
        call = self._call_args(kwargs, chat=False)
        return self.text_generation_client().astream(self._prompt(messages), **call)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """One answer to ``messages``; tool calls in ``message.additional_kwargs``."""
        if self.streaming:
            stream = ResponseStream()
            return last(
                streamed(self._chat_chunks(messages, kwargs), stream.chat, stream.chat_final)
            )
        if self._speaks_chat():
            call = self._call_args(kwargs, chat=True)
            return chat_response(self.chat_client().chat(wire_messages(messages), **call))
        call = self._call_args(kwargs, chat=False)
        out = self.text_generation_client().generate(self._prompt(messages), **call)
        return chat_response(out)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Async :meth:`chat`; safe from any event loop."""
        if self.streaming:
            stream = ResponseStream()
            chunks = await self._achat_chunks(messages, kwargs)
            return await alast(astreamed(chunks, stream.chat, stream.chat_final))
        if await self._aspeaks_chat():
            call = self._call_args(kwargs, chat=True)
            return chat_response(await self.chat_client().achat(wire_messages(messages), **call))
        call = self._call_args(kwargs, chat=False)
        out = await self.text_generation_client().agenerate(self._prompt(messages), **call)
        return chat_response(out)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """The answer as it arrives: one response per delta, then one with finish and usage."""
        stream = ResponseStream()
        return streamed(self._chat_chunks(messages, kwargs), stream.chat, stream.chat_final)

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Async :meth:`stream_chat`: ``async for part in await llm.astream_chat(...)``."""
        stream = ResponseStream()
        chunks = await self._achat_chunks(messages, kwargs)
        return astreamed(chunks, stream.chat, stream.chat_final)

    # -- complete ---------------------------------------------------------------------------------

    def _formatted(self, prompt: str, formatted: bool) -> str:
        if formatted:
            return prompt
        return (self.completion_to_prompt or default_completion_to_prompt)(prompt)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """The answer to ``prompt`` (``completion_to_prompt`` applied unless ``formatted``)."""
        client, text = self.text_generation_client(), self._formatted(prompt, formatted)
        if self.streaming:
            stream = ResponseStream()
            chunks = client.stream(text, **self._call_args(kwargs, chat=False))
            return last(streamed(chunks, stream.completion, stream.completion_final))
        return completion_response(client.generate(text, **self._call_args(kwargs, chat=False)))

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Async :meth:`complete`; safe from any event loop."""
        client, text = self.text_generation_client(), self._formatted(prompt, formatted)
        if self.streaming:
            stream = ResponseStream()
            chunks = client.astream(text, **self._call_args(kwargs, chat=False))
            return await alast(astreamed(chunks, stream.completion, stream.completion_final))
        out = await client.agenerate(text, **self._call_args(kwargs, chat=False))
        return completion_response(out)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """The answer as it arrives: one response per delta, then one with finish and usage."""
        client, text = self.text_generation_client(), self._formatted(prompt, formatted)
        chunks = client.stream(text, **self._call_args(kwargs, chat=False))
        stream = ResponseStream()
        return streamed(chunks, stream.completion, stream.completion_final)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Async :meth:`stream_complete`: ``async for part in await llm.astream_complete(...)``."""
        client, text = self.text_generation_client(), self._formatted(prompt, formatted)
        chunks = client.astream(text, **self._call_args(kwargs, chat=False))
        stream = ResponseStream()
        return astreamed(chunks, stream.completion, stream.completion_final)

    # -- structured output ------------------------------------------------------------------------

    def _structured_call(
        self, output_cls: type[Model], prompt: BasePromptTemplate, llm_kwargs: Any, args: Any
    ) -> tuple[list[dict[str, Any]], StructuredSpec, GenerationOptions]:
        call = self._call_args(dict(llm_kwargs or {}), chat=True)
        options = (call["options"] or self.generation_options()).merged(stop=call["stop"])
        messages = wire_messages(prompt.format_messages(llm=self, **args))
        return messages, spec_for(output_cls), options

    def structured_predict(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        """An ``output_cls`` answering ``prompt`` (``as_structured_llm`` uses it): native
        ``response_format``, else a forced tool call, else JSON-mode prompting
        (:mod:`hfrag.tasks.structured`); a reply that does not validate raises
        :class:`~hfrag.tasks.StructuredOutputError` (``raw``: the text)."""
        if not self._speaks_chat():
            out = super().structured_predict(output_cls, prompt, llm_kwargs, **prompt_args)
            return cast(Model, out)
        messages, spec, options = self._structured_call(output_cls, prompt, llm_kwargs, prompt_args)
        answer = self.chat_client().structured(messages, spec, options=options)
        return cast(Model, validated(output_cls, answer.text))

    async def astructured_predict(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        """Async :meth:`structured_predict`."""
        if not await self._aspeaks_chat():
            out = await super().astructured_predict(output_cls, prompt, llm_kwargs, **prompt_args)
            return cast(Model, out)
        messages, spec, options = self._structured_call(output_cls, prompt, llm_kwargs, prompt_args)
        answer = await self.chat_client().astructured(messages, spec, options=options)
        return cast(Model, validated(output_cls, answer.text))

    # -- tools ------------------------------------------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Chat arguments for ``chat_with_tools``: the history (not modified) plus the user
        message, the tools in the OpenAI form, and ``tool_choice`` (a tool's name forces it;
        ``tool_required`` means ``"required"``)."""
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
        if user_msg is not None:
            messages.append(user_msg)
        out: dict[str, Any] = {"messages": messages, **kwargs}
        if tools:
            out["tools"] = tool_specs(tools)
            out["tool_choice"] = tool_choice or ("required" if tool_required else "auto")
        return out

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Keep only the first tool call unless parallel calls are allowed (as OpenAI's class)."""
        calls = response.message.additional_kwargs.get("tool_calls")
        if not allow_parallel_tool_calls and isinstance(calls, list) and len(calls) > 1:
            response.message.additional_kwargs["tool_calls"] = calls[:1]
        return response

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls of ``response`` as selections (arguments that are not a JSON object
        become ``{}``). With none: ``ValueError`` if ``error_on_no_tool_call``, else ``[]``."""
        calls = message_tool_calls(response.message)
        if not calls:
            if error_on_no_tool_call:
                raise ValueError("Expected at least one tool call, but got 0 tool calls.")
            return []
        return tool_selections(calls)
