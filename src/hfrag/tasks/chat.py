"""The chat-completions task client: OpenAI-shaped messages in, text and tool calls out.

One wire form, spoken by the router (``/v1/chat/completions``, ``model`` or ``model:provider``),
TGI, vLLM, llama.cpp and Inference Endpoints (``{endpoint}/v1/chat/completions``); its bodies and
decoders are pure functions in :mod:`hfrag.tasks.chat_wire` (re-exported here). Shared types and
options are in :mod:`hfrag.tasks.generation`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from typing_extensions import Unpack

from hfrag.errors import ConfigurationError, InvalidRequestError, NotFoundError
from hfrag.tasks.base import Connection
from hfrag.tasks.chat_stream import ChatStreamDecoder
from hfrag.tasks.chat_wire import (
    chat_body,
    chat_model_field,
    chat_target_url,
    check_tool_choice,
    check_tools,
    decode_chat,
    is_tgi_info,
    normalize_finish,
    response_format_for,
)
from hfrag.tasks.generation import (
    Chunk,
    GenerationOptions,
    GenerationOutput,
    LLMClient,
    aiter_chunks,
    check_messages,
    iter_chunks,
)
from hfrag.tasks.reasoning import outgoing_messages, wants_reasoning_back
from hfrag.tasks.structured import (
    FORMS,
    Form,
    StructuredAnswer,
    StructuredSpec,
    read_answer,
    refuses,
    with_instruction,
)
from hfrag.transport import Request

__all__ = [
    "ChatClient",
    "ChatStreamDecoder",
    "ResponseFormatStyle",
    "chat_body",
    "chat_model_field",
    "chat_target_url",
    "decode_chat",
    "is_tgi_info",
    "normalize_finish",
    "response_format_for",
]

ResponseFormatStyle = Literal["auto", "openai", "tgi"]


@dataclass(frozen=True)
class _Call:
    request: Request
    stop: tuple[str, ...]
    prefix: str
    split: bool = True


class ChatClient(LLMClient):
    """Framework-free chat completions over the router or any OpenAI-compatible endpoint.

    ``model`` is a Hub model id on the router (``provider`` picks a provider or a routing
    policy: ``"together"``, ``"fastest"``, ``"cheapest"``); ``endpoint_url`` is a TGI, vLLM,
    llama.cpp or Inference Endpoint base (``/v1/chat/completions`` is added unless present).
    ``response_format_style`` says which ``response_format`` form to send: ``"auto"`` sends
    TGI's ``{"type": "json_object", "value": schema}`` to a TGI endpoint (known from its
    ``/info``) and the OpenAI ``json_schema`` form elsewhere.

    Example::

        client = ChatClient(endpoint_url="http://127.0.0.1:8082")
        out = client.chat([{"role": "user", "content": "Where is Paris?"}])
        for chunk in client.stream_chat([{"role": "user", "content": "Hi"}]):
            ...
    """

    def __init__(
        self,
        model: str | None = None,
        endpoint_url: str | None = None,
        *,
        provider: str | None = None,
        options: GenerationOptions | None = None,
        response_format_style: ResponseFormatStyle = "auto",
        **connection: Unpack[Connection],
    ) -> None:
        super().__init__(model, endpoint_url, provider=provider, options=options, **connection)
        if response_format_style not in ("auto", "openai", "tgi"):
            raise ConfigurationError(
                "response_format_style must be 'auto', 'openai' or 'tgi', got "
                f"{response_format_style!r}"
            )
        self.response_format_style = response_format_style
        self._structured_from = 0  # the first structured-output form worth trying here
        self._reasoning_back = False  # the server said it wants reasoning sent back

    @property
    def url(self) -> str:
        """Where chat requests go."""
        return chat_target_url(self.target)

    @property
    def model_field(self) -> str:
        """The body's ``model`` (see :func:`chat_model_field`)."""
        return chat_model_field(self.target, self.provider)

    async def _style(self) -> Literal["openai", "tgi"]:
        if self.response_format_style != "auto":
            return self.response_format_style
        if self.target.is_endpoint:
            return "tgi" if is_tgi_info(await self._endpoint_info()) else "openai"
        return "tgi" if self.provider == "hf-inference" else "openai"

    async def _prepare(
        self,
        messages: list[dict[str, Any]],
        tools: Any,
        tool_choice: Any,
        response_format: Any,
        options: GenerationOptions,
        stream: bool,
        prefix: str = "",
    ) -> _Call:
        checked = check_tools(tools)
        choice = check_tool_choice(tool_choice, checked)
        fmt = None
        if response_format is not None:
            fmt = response_format_for(response_format, await self._style())
        body = chat_body(
            self.model_field,
            outgoing_messages(messages, options.send_reasoning or self._reasoning_back),
            options,
            tools=checked,
            tool_choice=choice,
            response_format=fmt,
            stream=stream,
        )
        request = Request(self.url, json=body, stream=stream)
        return _Call(request, options.stop, prefix, options.split_reasoning)

    async def _chat(self, call: _Call) -> GenerationOutput:
        payload = await self.async_transport.request(call.request)
        return decode_chat(payload, call.request.url, call.stop, call.prefix, call.split)

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        response_format: Mapping[str, Any] | None = None,
        stop: Sequence[str] | str | None = None,
        options: GenerationOptions | None = None,
    ) -> GenerationOutput:
        """One answer to ``messages`` (OpenAI-shaped dicts)."""
        checked, opts = check_messages(messages), self._options(stop, options)
        return self.run(self._achat(checked, tools, tool_choice, response_format, opts))

    async def achat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        response_format: Mapping[str, Any] | None = None,
        stop: Sequence[str] | str | None = None,
        options: GenerationOptions | None = None,
    ) -> GenerationOutput:
        """Async :meth:`chat`; safe from any event loop."""
        checked, opts = check_messages(messages), self._options(stop, options)
        return await self.arun(self._achat(checked, tools, tool_choice, response_format, opts))

    async def _achat(
        self,
        messages: list[dict[str, Any]],
        tools: Any,
        choice: Any,
        fmt: Any,
        opts: GenerationOptions,
        prefix: str = "",
    ) -> GenerationOutput:
        call = await self._prepare(messages, tools, choice, fmt, opts, False, prefix)
        try:
            return await self._chat(call)
        except InvalidRequestError as error:
            if self._reasoning_back or not wants_reasoning_back(error.message, messages):
                raise
            self._reasoning_back = True  # remembered: later calls (and streams) send it
        return await self._chat(
            await self._prepare(messages, tools, choice, fmt, opts, False, prefix)
        )

    def stream_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        response_format: Mapping[str, Any] | None = None,
        stop: Sequence[str] | str | None = None,
        options: GenerationOptions | None = None,
    ) -> Iterator[Chunk]:
        """The answer as it is generated: text deltas, tool-call deltas, finish, usage.

        Closing the iterator (or leaving a ``for`` loop early) closes the connection.
        """
        checked, opts = check_messages(messages), self._options(stop, options)
        call = self.run(self._prepare(checked, tools, tool_choice, response_format, opts, True))
        return self.iterate(self._iter(call))

    def _iter(self, call: _Call) -> Iterator[Chunk]:
        decoder = ChatStreamDecoder(call.request.url, call.stop, call.prefix, call.split)
        return iter_chunks(self.sync_transport, call.request, decoder)

    def astream_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        response_format: Mapping[str, Any] | None = None,
        stop: Sequence[str] | str | None = None,
        options: GenerationOptions | None = None,
    ) -> AsyncIterator[Chunk]:
        """Async :meth:`stream_chat`; ``aclose()`` (or ``async with aclosing``) closes it."""
        checked, opts = check_messages(messages), self._options(stop, options)
        return self.aiterate(self._aiter(checked, tools, tool_choice, response_format, opts))

    async def _aiter(
        self,
        messages: list[dict[str, Any]],
        tools: Any,
        choice: Any,
        fmt: Any,
        opts: GenerationOptions,
        prefix: str = "",
    ) -> AsyncIterator[Chunk]:
        call = await self.arun(self._prepare(messages, tools, choice, fmt, opts, True, prefix))
        decoder = ChatStreamDecoder(call.request.url, call.stop, call.prefix, call.split)
        chunks = aiter_chunks(self.async_transport, call.request, decoder)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()

    # -- structured output ------------------------------------------------------------------------

    def structured(
        self,
        messages: Sequence[Mapping[str, Any]],
        spec: StructuredSpec,
        *,
        form: Form | Literal["auto"] = "auto",
        options: GenerationOptions | None = None,
    ) -> StructuredAnswer:
        """An answer matching ``spec.schema`` (see :mod:`hfrag.tasks.structured`).

        Args:
            messages: OpenAI-shaped messages.
            spec: the JSON schema, its name and ``strict``.
            form: ``"auto"`` tries ``json_schema``, then a forced tool call, then JSON-mode
                prompting, each when the server refuses the one before (remembered); a form
                named is the only one tried.
            options: generation options for this call.

        Returns:
            The answer, the form used, the JSON text and the parsed object.

        Raises:
            StructuredOutputError: the answer is not a JSON object (``raw`` holds it).
            InferenceError: the server failed, or refused every form.
        """
        checked, opts = check_messages(messages), self._options(None, options)
        return self.run(self._structured(checked, spec, form, opts))

    async def astructured(
        self,
        messages: Sequence[Mapping[str, Any]],
        spec: StructuredSpec,
        *,
        form: Form | Literal["auto"] = "auto",
        options: GenerationOptions | None = None,
    ) -> StructuredAnswer:
        """Async :meth:`structured`."""
        checked, opts = check_messages(messages), self._options(None, options)
        return await self.arun(self._structured(checked, spec, form, opts))

    async def _structured(
        self,
        messages: list[dict[str, Any]],
        spec: StructuredSpec,
        form: Form | Literal["auto"],
        opts: GenerationOptions,
    ) -> StructuredAnswer:
        if form != "auto" and form not in FORMS:
            raise ConfigurationError(f"form must be 'auto' or one of {list(FORMS)}, got {form!r}")
        forms = FORMS[self._structured_from :] if form == "auto" else (form,)
        for i, current in enumerate(forms):
            try:
                if current == "json_schema":
                    out = await self._achat(messages, None, None, spec.response_format(), opts)
                elif current == "function_calling":
                    out = await self._achat(messages, [spec.tool()], spec.name, None, opts)
                else:
                    out = await self._achat(
                        with_instruction(messages, spec), None, None, None, opts
                    )
            except (InvalidRequestError, NotFoundError) as error:
                if form != "auto" or i + 1 == len(forms) or not refuses(error, current):
                    raise
                self._structured_from = FORMS.index(forms[i + 1])
                continue
            return read_answer(out, current, spec)
        raise AssertionError("unreachable: the last form returns or raises")
