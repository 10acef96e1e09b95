"""Prompt in, text out: TGI's text-generation wire form, or chat completions, chosen once.

With ``task="auto"`` a model id on the router uses chat completions (most router models are
chat-only), the prompt sent as one user message; an endpoint whose ``GET /info`` is TGI's, or a
URL ending in ``/generate``, uses ``/generate`` and ``/generate_stream``; any other endpoint uses
chat completions, and if its chat route does not exist (404/405) text-generation at the URL as
given. The choice is made once per client. An error names the other task only when neither form
works. Stop sequences are trimmed here (TGI leaves them in ``generated_text``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, replace
from typing import Any, Literal

from typing_extensions import Unpack

from hfrag.errors import ConfigurationError, InferenceError, MalformedResponseError, NotFoundError
from hfrag.tasks.base import Connection
from hfrag.tasks.chat_wire import (
    ChatStreamDecoder,
    chat_body,
    chat_model_field,
    chat_target_url,
    decode_chat,
    is_tgi_info,
    normalize_finish,
)
from hfrag.tasks.generation import (
    Chunk,
    ChunkDecoder,
    Finish,
    GenerationOptions,
    GenerationOutput,
    LLMClient,
    StopTrimmer,
    TextDelta,
    Usage,
    aiter_chunks,
    check_prompt,
    iter_chunks,
    stream_cut,
)
from hfrag.tasks.logprobs import LogprobsDelta, tgi_logprobs, tgi_token
from hfrag.tasks.reasoning import ReasoningReader, split_think
from hfrag.transport import Request
from hfrag.transport.urls import endpoint_route, model_url, redact_url

__all__ = ["TGIStreamDecoder", "Task", "TextGenerationClient", "decode_tgi", "tgi_body"]

Task = Literal["auto", "text-generation", "chat"]
Wire = Literal["text-generation", "chat"]
_CHAT_ONLY_HINTS = ("conversational", "not supported for task", "chat only", "chat-only")


def tgi_body(prompt: str, options: GenerationOptions, stream: bool) -> dict[str, Any]:
    """A text-generation body: ``{"inputs", "parameters", "stream"?}``."""
    body: dict[str, Any] = {"inputs": prompt, "parameters": options.tgi_parameters()}
    if stream:
        body["stream"] = True
    return body


def _tgi_usage(details: Any, prompt_key: str = "input_length") -> Usage | None:
    if not isinstance(details, Mapping):
        return None
    prompt = details.get(prompt_key)
    generated = details.get("generated_tokens")
    prompt = prompt if isinstance(prompt, int) and not isinstance(prompt, bool) else None
    generated = (
        generated if isinstance(generated, int) and not isinstance(generated, bool) else None
    )
    total = prompt + generated if prompt is not None and generated is not None else None
    return Usage(prompt, generated, total)


def decode_tgi(payload: Any, url: str, prompt: str, options: GenerationOptions) -> GenerationOutput:
    """A ``/generate`` answer (``{"generated_text"}``, list-wrapped from ``POST /``)."""
    item = payload[0] if isinstance(payload, list) and len(payload) == 1 else payload
    text = item.get("generated_text") if isinstance(item, Mapping) else None
    if not isinstance(text, str):
        raise MalformedResponseError(
            f"text-generation answer has no generated_text: {str(payload)[:200]!r}",
            status=200,
            url=redact_url(url),
        )
    prefix = ""
    if options.return_full_text and text.startswith(prompt):
        prefix, text = prompt, text[len(prompt) :]
    details = item.get("details")
    raw_reason = details.get("finish_reason") if isinstance(details, Mapping) else None
    reasoning, text = split_think(text, options.split_reasoning)
    return GenerationOutput(
        text=prefix + StopTrimmer(options.stop).trim(text),
        finish_reason=normalize_finish(raw_reason) or "stop",
        usage=_tgi_usage(details),
        raw_finish_reason=None if raw_reason is None else str(raw_reason),
        raw=payload,
        reasoning=reasoning,
        logprobs=tgi_logprobs(details) if options.logprobs or options.top_logprobs else None,
    )


class TGIStreamDecoder:
    """``/generate_stream`` events to chunks; the last event carries ``generated_text``."""

    def __init__(
        self,
        url: str,
        stop: tuple[str, ...],
        prefix: str = "",
        options: GenerationOptions | None = None,
    ) -> None:
        self._url = url
        self._trim = StopTrimmer(stop)
        self._prefix = prefix
        self._finished = False
        self._reasoning = ReasoningReader(options is None or options.split_reasoning)
        self._logprobs = options is not None and bool(options.logprobs or options.top_logprobs)

    def feed(self, payload: Any) -> list[Chunk]:
        if not isinstance(payload, Mapping) or not isinstance(payload.get("token"), Mapping):
            raise MalformedResponseError(
                f"text-generation stream event has no token: {str(payload)[:200]!r}",
                status=200,
                url=redact_url(self._url),
            )
        out: list[Chunk] = []
        if self._prefix:
            out.append(TextDelta(self._prefix))
            self._prefix = ""
        if self._finished:
            return out
        token = payload["token"]
        if not token.get("special") and isinstance(token.get("text"), str):
            thoughts, answer = self._reasoning.feed({}, token["text"])
            out.extend(thoughts)
            text = self._trim.feed(answer)
            if text:
                out.append(TextDelta(text))
            logprob = tgi_token(token, payload.get("top_tokens")) if self._logprobs else None
            if logprob is not None:
                out.append(LogprobsDelta((logprob,)))
        if payload.get("generated_text") is not None or payload.get("details") is not None:
            thoughts, answer = self._reasoning.flush()
            out.extend(thoughts)
            rest = self._trim.feed(answer) + self._trim.flush()
            if rest:
                out.append(TextDelta(rest))
            details = payload.get("details")
            raw = details.get("finish_reason") if isinstance(details, Mapping) else None
            out.append(Finish(normalize_finish(raw) or "stop", None if raw is None else str(raw)))
            usage = _tgi_usage(details)
            if usage is not None:
                out.append(usage)
            self._finished = True
        return out

    def finish(self) -> list[Chunk]:
        if not self._finished:
            raise stream_cut(self._url, "no event carried generated_text")
        return []


@dataclass(frozen=True)
class _Route:
    wire: Wire
    url: str
    stream_url: str
    fallback: _Route | None = None


def _route_missing(error: InferenceError) -> bool:
    """The server has no such route or task (as opposed to rejecting this input)."""
    if isinstance(error, NotFoundError) or error.status == 405:
        return True
    text = error.message.lower()
    return error.status in (400, 422) and any(h in text for h in _CHAT_ONLY_HINTS)


def _with_hint(error: InferenceError, hint: str) -> InferenceError:
    clone = type(error)(
        f"{error.message}; {hint}",
        status=error.status,
        error_type=error.error_type,
        url=error.url,
        retry_after=error.retry_after,
        positions=error.positions,
        body=error.body,
    )
    return clone


class TextGenerationClient(LLMClient):
    """A prompt in, text out, over text-generation or chat completions (see the module doc).

    ``task``: ``"auto"`` (default), ``"text-generation"`` (TGI ``/generate``, the router's
    hf-inference text-generation) or ``"chat"`` (the prompt as one user message).

    Example::

        client = TextGenerationClient(endpoint_url="http://127.0.0.1:8082")
        print(client.generate("Question: where is Paris?").text)
        for chunk in client.stream("Question: where is Paris?"):
            ...
    """

    def __init__(
        self,
        model: str | None = None,
        endpoint_url: str | None = None,
        *,
        task: Task = "auto",
        provider: str | None = None,
        options: GenerationOptions | None = None,
        **connection: Unpack[Connection],
    ) -> None:
        if task not in ("auto", "text-generation", "chat"):
            raise ConfigurationError(
                f"task must be 'auto', 'text-generation' or 'chat', got {task!r}"
            )
        super().__init__(model, endpoint_url, provider=provider, options=options, **connection)
        if task == "text-generation" and self.provider not in (None, "hf-inference"):
            raise ConfigurationError(
                f"text-generation on the router is served by hf-inference only, not provider "
                f"{self.provider!r}: use task='chat' (or 'auto') for other providers"
            )
        self.task: Task = task
        self._route: _Route | None = None

    def _tgi_route(self, url: str | None = None) -> _Route:
        if self.target.model is not None:
            url = model_url(self.target.model, "text-generation", self.target.router_url)
            return _Route("text-generation", url, url)
        url = url or self.target.endpoint_url
        assert url is not None
        return _Route("text-generation", url, url)

    def _chat_route(self, fallback: _Route | None = None) -> _Route:
        url = chat_target_url(self.target)
        return _Route("chat", url, url, fallback)

    async def _resolve(self) -> _Route:
        if self._route is not None:
            return self._route
        endpoint = self.target.endpoint_url
        path = (endpoint or "").split("?", 1)[0].rstrip("/")
        generate_route = path.endswith(("/generate", "/generate_stream"))
        if endpoint is None:
            route = self._tgi_route() if self.task == "text-generation" else self._chat_route()
        elif self.task == "chat" or (
            self.task == "auto" and path.endswith(("/chat/completions", "/v1"))
        ):
            route = self._chat_route()
        elif generate_route or is_tgi_info(await self._endpoint_info()):
            route = _Route(
                "text-generation",
                endpoint_route(endpoint, "/generate"),
                endpoint_route(endpoint, "/generate_stream"),
            )
        elif self.task == "text-generation":
            route = self._tgi_route(endpoint)
        else:
            route = self._chat_route(fallback=self._tgi_route(endpoint))
        self._route = route
        return route

    def wire(self) -> Wire:
        """The wire form this client speaks: ``"text-generation"`` or ``"chat"`` (resolved once;
        an endpoint may need one ``GET /info``)."""
        return self.run(self._resolve()).wire

    async def awire(self) -> Wire:
        """Async :meth:`wire`."""
        return (await self.arun(self._resolve())).wire

    # -- one answer -----------------------------------------------------------------------------

    def _request(
        self, route: _Route, prompt: str, opts: GenerationOptions, stream: bool
    ) -> Request:
        if route.wire == "chat":
            messages = [{"role": "user", "content": prompt}]
            model = chat_model_field(self.target, self.provider)
            body = chat_body(model, messages, opts, stream=stream)
            return Request(route.url, json=body, stream=stream)
        url = route.stream_url if stream else route.url
        return Request(url, json=tgi_body(prompt, opts, stream), stream=stream)

    def _decoder(self, route: _Route, prompt: str, opts: GenerationOptions) -> ChunkDecoder:
        prefix = prompt if opts.return_full_text else ""
        if route.wire == "chat":
            return ChatStreamDecoder(route.url, opts.stop, prefix, opts.split_reasoning)
        return TGIStreamDecoder(route.stream_url, opts.stop, prefix, opts)

    async def _once(self, route: _Route, prompt: str, opts: GenerationOptions) -> GenerationOutput:
        request = self._request(route, prompt, opts, False)
        payload = await self.async_transport.request(request)
        if route.wire == "chat":
            prefix = prompt if opts.return_full_text else ""
            return decode_chat(payload, request.url, opts.stop, prefix, opts.split_reasoning)
        return decode_tgi(payload, request.url, prompt, opts)

    def _failed(self, route: _Route, error: InferenceError) -> InferenceError:
        """The error to raise, with a hint naming the other task when it may help."""
        if route.wire == "text-generation" and self.target.model and _route_missing(error):
            return _with_hint(
                error,
                "this model may be served for chat only: use task='chat' or task='auto' "
                "(the chat model class)",
            )
        return error

    def _neither(self, first: InferenceError, second: InferenceError) -> InferenceError:
        return _with_hint(
            second,
            f"{self.target.describe()} answers neither chat completions ({first.url}: "
            f"{first.status}) nor text-generation ({second.url}: {second.status}); check the "
            "URL: it must be a TGI, vLLM, llama.cpp or other OpenAI-compatible LLM server",
        )

    async def _generate(self, prompt: str, opts: GenerationOptions) -> GenerationOutput:
        route = await self._resolve()
        try:
            out = await self._once(route, prompt, opts)
        except InferenceError as error:
            if route.fallback is None or not _route_missing(error):
                raise self._failed(route, error) from None
            try:
                out = await self._once(route.fallback, prompt, opts)
            except InferenceError as second:
                if _route_missing(second):
                    raise self._neither(error, second) from None
                raise
            self._route = route.fallback
            return out
        if route.fallback is not None:
            self._route = replace(route, fallback=None)
        return out

    def generate(
        self, prompt: str, *, stop: Any = None, options: GenerationOptions | None = None
    ) -> GenerationOutput:
        """The whole answer to ``prompt`` (stop sequences trimmed)."""
        text, opts = check_prompt(prompt), self._options(stop, options)
        return self.run(self._generate(text, opts))

    async def agenerate(
        self, prompt: str, *, stop: Any = None, options: GenerationOptions | None = None
    ) -> GenerationOutput:
        """Async :meth:`generate`; safe from any event loop."""
        text, opts = check_prompt(prompt), self._options(stop, options)
        return await self.arun(self._generate(text, opts))

    # -- streams --------------------------------------------------------------------------------

    def stream(
        self, prompt: str, *, stop: Any = None, options: GenerationOptions | None = None
    ) -> Iterator[Chunk]:
        """The answer as it is generated; closing the iterator closes the connection."""
        text, opts = check_prompt(prompt), self._options(stop, options)
        route = self.run(self._resolve())
        return self._iter(route, text, opts)

    def _open(
        self, route: _Route, prompt: str, opts: GenerationOptions
    ) -> tuple[Generator[Chunk, None, None], Chunk | None]:
        """A stream and its first chunk: failures to open it (retried by the transport first)
        surface here, before anything was yielded to the caller."""
        request = self._request(route, prompt, opts, True)
        chunks = iter_chunks(self.sync_transport, request, self._decoder(route, prompt, opts))
        try:
            return chunks, next(chunks, None)
        except BaseException:
            chunks.close()
            raise

    def _iter(self, route: _Route, prompt: str, opts: GenerationOptions) -> Iterator[Chunk]:
        try:
            chunks, first = self._open(route, prompt, opts)
        except InferenceError as error:
            if route.fallback is None or not _route_missing(error):
                raise self._failed(route, error) from None
            try:
                chunks, first = self._open(route.fallback, prompt, opts)
            except InferenceError as second:
                raise self._neither(error, second) if _route_missing(second) else second from None
            route = route.fallback
        self._route = replace(route, fallback=None)
        with closing(chunks):
            if first is not None:
                yield first
                yield from chunks

    def astream(
        self, prompt: str, *, stop: Any = None, options: GenerationOptions | None = None
    ) -> AsyncIterator[Chunk]:
        """Async :meth:`stream`; ``aclose()`` closes the connection."""
        text, opts = check_prompt(prompt), self._options(stop, options)
        return self._aiter(text, opts)

    async def _aopen(
        self, route: _Route, prompt: str, opts: GenerationOptions
    ) -> tuple[AsyncGenerator[Chunk, None], Chunk | None]:
        request = self._request(route, prompt, opts, True)
        chunks = aiter_chunks(self.async_transport, request, self._decoder(route, prompt, opts))
        try:
            return chunks, await anext(chunks, None)
        except BaseException:
            await chunks.aclose()
            raise

    async def _aiter(self, prompt: str, opts: GenerationOptions) -> AsyncIterator[Chunk]:
        route = await self.arun(self._resolve())
        try:
            chunks, first = await self._aopen(route, prompt, opts)
        except InferenceError as error:
            if route.fallback is None or not _route_missing(error):
                raise self._failed(route, error) from None
            try:
                chunks, first = await self._aopen(route.fallback, prompt, opts)
            except InferenceError as second:
                raise self._neither(error, second) if _route_missing(second) else second from None
            route = route.fallback
        self._route = replace(route, fallback=None)
        try:
            if first is not None:
                yield first
                async for chunk in chunks:
                    yield chunk
        finally:
            await chunks.aclose()
