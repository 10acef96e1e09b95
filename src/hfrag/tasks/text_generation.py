"""Prompt in, text out: TGI's text-generation wire form, or chat completions, chosen once.

With ``task="auto"`` a model id on the router uses chat completions (most router models are
chat-only), the prompt sent as one user message; an endpoint whose ``GET /info`` is TGI's, or a
URL ending in ``/generate``, uses ``/generate`` and ``/generate_stream``; any other endpoint uses
chat completions, and if its chat route does not exist (404/405) text-generation at the URL as
given. The choice is made once per client. An error names the other task only when neither form
works. Stop sequences are trimmed here (TGI leaves them in ``generated_text``).

A text-generation server that is not TGI (the router's hf-inference serving a model with the
transformers pipeline, such as google/flan-t5-large or gpt2) refuses parameters its model does
not take with 400 ``The following `model_kwargs` are not used by the model: ['stop', ...]``.
The call is retried once without them and they are remembered for that URL (the client's
model); a dropped ``stop`` still applies, as hfrag trims stop sequences itself. huggingface_hub
does the same (``InferenceClient.text_generation``).
"""

from __future__ import annotations

from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
)
from contextlib import closing
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from typing_extensions import Unpack

from hfrag.errors import ConfigurationError, InferenceError, NotFoundError
from hfrag.tasks.base import Connection
from hfrag.tasks.chat_stream import ChatStreamDecoder
from hfrag.tasks.chat_wire import (
    chat_body,
    chat_model_field,
    chat_target_url,
    decode_chat,
    is_tgi_info,
)
from hfrag.tasks.generation import (
    Chunk,
    ChunkDecoder,
    GenerationOptions,
    GenerationOutput,
    LLMClient,
    aiter_chunks,
    check_prompt,
    iter_chunks,
)
from hfrag.tasks.tgi_wire import TGIStreamDecoder, decode_tgi, tgi_body, unused_parameters
from hfrag.transport import Request
from hfrag.transport.urls import endpoint_route, model_url

__all__ = ["TGIStreamDecoder", "Task", "TextGenerationClient", "decode_tgi", "tgi_body"]

Task = Literal["auto", "text-generation", "chat"]
Wire = Literal["text-generation", "chat"]
_CHAT_ONLY_HINTS = ("conversational", "not supported for task", "chat only", "chat-only")
T = TypeVar("T")


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


@dataclass
class _Tries:
    """Where one call stands: the route being tried, the chat route's failure once it fell back
    to text-generation, whether refused parameters were already dropped, and the options (whose
    text-generation parameters are what a refusal can name)."""

    route: _Route
    options: GenerationOptions
    first: InferenceError | None = None
    dropped: bool = False


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
        # Parameters a non-TGI server refused, per text-generation URL (that is, per model).
        self._refused: dict[str, frozenset[str]] = {}

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
        return await self.choose_wire(self._decide)

    async def _decide(self) -> _Route:
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
        drop = self._refused.get(route.url, frozenset())
        return Request(url, json=tgi_body(prompt, opts, stream, drop), stream=stream)

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
            return error.replaced(
                message=f"{error.message}; this model may be served for chat only: use "
                "task='chat' or task='auto' (the chat model class)"
            )
        return error

    def _neither(self, first: InferenceError, second: InferenceError) -> InferenceError:
        return second.replaced(
            message=f"{second.message}; {self.target.describe()} answers neither chat "
            f"completions ({first.url}: {first.status}) nor text-generation ({second.url}: "
            f"{second.status}); check the URL: it must be a TGI, vLLM, llama.cpp or other "
            "OpenAI-compatible LLM server"
        )

    def _next(self, tries: _Tries, error: InferenceError) -> None:
        """Move ``tries`` to its next attempt after ``error``, or raise what the caller gets.

        In order: a text-generation route that refused parameters is tried once more without
        them (remembered for its URL); a chat route that does not exist falls back to its
        text-generation route; otherwise the error, with a hint when the other task may help.
        """
        route = tries.route
        refused: frozenset[str] = frozenset()
        if route.wire == "text-generation":  # only what was sent can be dropped
            refused = unused_parameters(error) & tries.options.tgi_parameters().keys()
        known = self._refused.get(route.url, frozenset())
        if refused - known and not tries.dropped:
            self._refused[route.url] = known | refused
            tries.dropped = True
            return
        if tries.first is None and route.fallback is not None and _route_missing(error):
            tries.first, tries.route = error, route.fallback
            return
        if tries.first is not None:
            raise (self._neither(tries.first, error) if _route_missing(error) else error) from None
        raise self._failed(route, error) from None

    def _settle(self, tries: _Tries) -> None:
        """Remember the route that answered (its fallback is no longer needed)."""
        self._wire.set(replace(tries.route, fallback=None))

    async def _attempts(
        self, route: _Route, opts: GenerationOptions, call: Callable[[_Route], Awaitable[T]]
    ) -> T:
        """``call`` on ``route``, then on what :meth:`_next` says, until one answers."""
        tries = _Tries(route, opts)
        while True:
            try:
                out = await call(tries.route)
            except InferenceError as error:
                self._next(tries, error)
                continue
            self._settle(tries)
            return out

    async def _generate(self, prompt: str, opts: GenerationOptions) -> GenerationOutput:
        route = await self._resolve()
        return await self._attempts(route, opts, lambda r: self._once(r, prompt, opts))

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
        return self.iterate(self._iter(route, text, opts))

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
        tries = _Tries(route, opts)
        while True:  # the same sequence as _attempts, with the sync transport
            try:
                chunks, first = self._open(tries.route, prompt, opts)
            except InferenceError as error:
                self._next(tries, error)
                continue
            break
        self._settle(tries)
        with closing(chunks):
            if first is not None:
                yield first
                yield from chunks

    def astream(
        self, prompt: str, *, stop: Any = None, options: GenerationOptions | None = None
    ) -> AsyncIterator[Chunk]:
        """Async :meth:`stream`; ``aclose()`` closes the connection."""
        text, opts = check_prompt(prompt), self._options(stop, options)
        return self.aiterate(self._aiter(text, opts))

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
        chunks, first = await self._attempts(route, opts, lambda r: self._aopen(r, prompt, opts))
        try:
            if first is not None:
                yield first
                async for chunk in chunks:
                    yield chunk
        finally:
            await chunks.aclose()
