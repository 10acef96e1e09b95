"""An endpoint's own tokenizer through TEI's ``POST /tokenize``: tokens with character offsets.

TEI answers ``{"inputs": [...], "add_special_tokens": bool, "prompt_name"?}`` with, per input,
``[{"id", "text", "special", "start", "stop"}, ...]``, where ``start``/``stop`` are **UTF-8 byte
offsets** into the (prompted) input and null for special tokens (TEI ``core/src/tokenization.rs``,
``into_tokens``; docs/PROTOCOL.md section 8). :func:`tokenize` turns them into character offsets
so ``text[token.start:token.stop]`` is the token's text, and runs the inputs in batches within
``max_client_batch_size`` through :func:`~hfrag.tasks.batching.run_batches`, on any
:class:`~hfrag.tasks.base.TaskClient` (its transports, retries, deadline).

TEI refuses (413) an input of more than ``max_input_length * 250`` characters before
tokenizing it (:data:`CHARS_PER_TOKEN_LIMIT`); :func:`tokenize` cuts longer texts at whitespace
into windows under that limit and joins their tokens, offsets shifted.

:class:`TokenizerClient` is the public face: ``tokenize``, ``count`` and ``max_input_length``.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from typing_extensions import Unpack

from hfrag.errors import ConfigurationError, InferenceError, MalformedResponseError
from hfrag.tasks.base import Connection, TaskClient, connect
from hfrag.tasks.batching import run_batches
from hfrag.tasks.inputs import check_texts
from hfrag.transport import Request
from hfrag.transport.urls import endpoint_route, redact_url

__all__ = [
    "CHARS_PER_TOKEN_LIMIT",
    "Limits",
    "Token",
    "TokenizerClient",
    "count_tokens",
    "endpoint_limits",
    "tokenize",
]

#: TEI's ``MAX_CHAR_MULTIPLIER``: characters allowed per token of ``max_input_length``.
CHARS_PER_TOKEN_LIMIT = 250
_BYTES_PER_INPUT = 8 * 1024 * 1024


@dataclass(frozen=True)
class Token:
    """One token: its id, its text, whether it is special, and character offsets (None when
    special) into the text that was tokenized."""

    id: int
    text: str
    special: bool
    start: int | None
    stop: int | None


@dataclass(frozen=True)
class Limits:
    """What an endpoint's ``GET /info`` says about input sizes (None: it does not say)."""

    max_input_length: int | None
    max_client_batch_size: int | None


def _positive(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return value if ok else None


async def endpoint_limits(client: TaskClient) -> Limits:
    """The endpoint's ``max_input_length`` and ``max_client_batch_size`` from ``GET /info``."""
    info = await client._endpoint_info()
    return Limits(
        _positive(info.get("max_input_length")), _positive(info.get("max_client_batch_size"))
    )


def _char_index(text: str, url: str, position: int) -> Any:
    """A map from UTF-8 byte offsets of ``text`` to character offsets."""
    if text.isascii():
        return lambda offset: offset
    ends = []
    total = 0
    for ch in text:
        ends.append(total)
        total += len(ch.encode("utf-8"))
    ends.append(total)

    def to_char(offset: int) -> int:
        i = bisect.bisect_left(ends, offset)
        if i >= len(ends) or ends[i] != offset:
            raise _bad(position, url, f"offset {offset} is not on a character boundary")
        return i

    return to_char


def _bad(position: int, url: str, why: str) -> MalformedResponseError:
    return MalformedResponseError(
        f"tokenize response for input {position} is malformed: {why}",
        status=200,
        url=redact_url(url),
    )


def _decode_row(row: Any, text: str, position: int, url: str) -> list[Token]:
    if not isinstance(row, list):
        raise _bad(position, url, f"expected a list of tokens, got {type(row).__name__}")
    to_char = _char_index(text, url, position)
    size = len(text.encode("utf-8")) if not text.isascii() else len(text)
    tokens = []
    previous: tuple[int, int] | None = None
    for item in row:
        if not isinstance(item, dict):
            raise _bad(position, url, f"a token is {type(item).__name__}, not an object")
        token_id, special = item.get("id"), item.get("special")
        start, stop = item.get("start"), item.get("stop")
        if not isinstance(token_id, int) or isinstance(token_id, bool):
            raise _bad(position, url, "a token has no integer id")
        special = bool(special) if isinstance(special, bool) else start is None
        if start is None or stop is None:
            if not special:
                raise _bad(position, url, "a non-special token has no offsets")
            tokens.append(Token(token_id, str(item.get("text", "")), True, None, None))
            continue
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop)):
            raise _bad(position, url, "token offsets must be integers")
        if not 0 <= start <= stop <= size:
            raise _bad(position, url, f"token offsets {start}-{stop} outside the text")
        # Tokens come in text order and do not overlap; only the byte pieces of one character
        # share a span. Anything else would put chunk boundaries out of order.
        if previous is not None and (start, stop) != previous and start < previous[1]:
            raise _bad(
                position,
                url,
                f"token offsets {start}-{stop} come before or inside the previous token's "
                f"{previous[0]}-{previous[1]}: tokens must follow the text in order",
            )
        previous = (start, stop)
        first, last = to_char(start), to_char(stop)
        tokens.append(Token(token_id, text[first:last], special, first, last))
    return tokens


def _windows(text: str, limit: int) -> list[tuple[int, int]]:
    """``text`` cut into ``[start, stop)`` windows of at most ``limit`` characters, at
    whitespace when there is any in the last half of a window."""
    out = []
    start = 0
    while len(text) - start > limit:
        stop = start + limit
        cut = max(
            text.rfind(" ", start + limit // 2, stop), text.rfind("\n", start + limit // 2, stop)
        )
        stop = cut + 1 if cut > start else stop
        out.append((start, stop))
        start = stop
    out.append((start, len(text)))
    return out


async def _rows(
    client: TaskClient,
    inputs: list[str],
    body: dict[str, Any],
    decode: Any,
    max_concurrency: int,
) -> list[Any]:
    """``decode(row, k)`` of every input's token list, in batches within the endpoint's limit."""
    assert client.target.endpoint_url is not None, "TEI's /tokenize needs an endpoint"
    url = endpoint_route(client.target.endpoint_url, "/tokenize")
    limits = await endpoint_limits(client)
    batch_size = min(32, limits.max_client_batch_size or 32)
    found: list[Any] = [None] * len(inputs)

    async def send(start: int, stop: int) -> list[Any]:
        payload = await client.async_transport.request(
            Request(
                url,
                json={"inputs": inputs[start:stop], **body},
                max_response_bytes=_BYTES_PER_INPUT * (stop - start),
            )
        )
        if not isinstance(payload, list) or len(payload) != stop - start:
            got = len(payload) if isinstance(payload, list) else type(payload).__name__
            raise _bad(start, url, f"{got} token lists for {stop - start} inputs")
        return [decode(row, start + k, url) for k, row in enumerate(payload)]

    def collect(start: int, stop: int, rows: list[Any]) -> None:
        found[start:stop] = rows

    await run_batches(len(inputs), batch_size, max_concurrency, send, collect)
    return found


async def tokenize(
    client: TaskClient,
    texts: Sequence[str],
    *,
    add_special_tokens: bool = False,
    max_concurrency: int = 4,
) -> list[list[Token]]:
    """The endpoint's tokens of each text, with character offsets into that text.

    A text longer than TEI's character limit is tokenized in windows (special tokens then come
    from every window: ask with ``add_special_tokens=False`` for long texts).
    """
    limits = await endpoint_limits(client)
    char_limit = (limits.max_input_length or 512) * CHARS_PER_TOKEN_LIMIT
    # Every window is one input of the requests; owner[k] is (text, offset) of window k.
    pieces: list[str] = []
    owner: list[tuple[int, int]] = []
    for i, text in enumerate(texts):
        for start, stop in _windows(text, char_limit - 1):
            pieces.append(text[start:stop])
            owner.append((i, start))

    def decode(row: Any, k: int, url: str) -> list[Token]:
        return _decode_row(row, pieces[k], owner[k][0], url)

    body = {"add_special_tokens": add_special_tokens}
    found = await _rows(client, pieces, body, decode, max_concurrency)
    out: list[list[Token]] = [[] for _ in texts]
    for (i, offset), tokens in zip(owner, found, strict=True):
        out[i].extend(tokens if offset == 0 else [_shifted(t, offset) for t in tokens])
    return out


def _shifted(token: Token, offset: int) -> Token:
    if token.start is None or token.stop is None:
        return token
    return Token(token.id, token.text, token.special, token.start + offset, token.stop + offset)


async def count_tokens(
    client: TaskClient,
    texts: Sequence[str],
    *,
    prompt_name: str | None = None,
    max_concurrency: int = 4,
) -> list[int | None]:
    """Tokens the endpoint counts for each text against ``max_input_length`` (special tokens and
    the prompt included); None for a text over TEI's character limit, which it refuses unread."""
    limits = await endpoint_limits(client)
    char_limit = (limits.max_input_length or 512) * CHARS_PER_TOKEN_LIMIT
    asked = [i for i, text in enumerate(texts) if len(text) <= char_limit]

    def decode(row: Any, k: int, url: str) -> int:
        if not isinstance(row, list):
            raise _bad(asked[k], url, f"expected a list of tokens, got {type(row).__name__}")
        return len(row)

    body: dict[str, Any] = {"add_special_tokens": True}
    if prompt_name is not None:
        body["prompt_name"] = prompt_name
    try:
        counted = await _rows(client, [texts[i] for i in asked], body, decode, max_concurrency)
    except InferenceError as error:
        raise error.with_positions([asked[p] for p in error.positions or ()]) from error
    out: list[int | None] = [None] * len(texts)
    for i, n in zip(asked, counted, strict=True):
        out[i] = n
    return out


class TokenizerClient(TaskClient):
    """An endpoint's own tokenizer (TEI ``/tokenize``): tokens with character offsets, counts.

    Example::

        tokenizer = TokenizerClient(endpoint_url="http://127.0.0.1:8080")
        tokens = tokenizer.tokenize(["Paris is in France."])[0]   # [Token(id, text, ...)]
        tokenizer.count(["Paris is in France."])                 # [7]: with [CLS] and [SEP]
        tokenizer.max_input_length()                              # 256, from GET /info
    """

    def __init__(
        self,
        model: str | None = None,
        endpoint_url: str | None = None,
        *,
        max_concurrency: int = 4,
        **connection: Unpack[Connection],
    ) -> None:
        super().__init__(*connect(model, endpoint_url, connection))
        if not self.target.is_endpoint:
            raise ConfigurationError(
                "an endpoint's tokenizer needs endpoint_url=... (a TEI server): the Hugging Face "
                "router has no /tokenize route"
            )
        self.max_concurrency = max_concurrency

    def tokenize(
        self, texts: Sequence[str], *, add_special_tokens: bool = False
    ) -> list[list[Token]]:
        """The tokens of each text, offsets in characters of that text."""
        items = check_texts(texts)
        return self.run(
            tokenize(
                self,
                items,
                add_special_tokens=add_special_tokens,
                max_concurrency=self.max_concurrency,
            )
        )

    async def atokenize(
        self, texts: Sequence[str], *, add_special_tokens: bool = False
    ) -> list[list[Token]]:
        """Async :meth:`tokenize`."""
        items = check_texts(texts)
        return await self.arun(
            tokenize(
                self,
                items,
                add_special_tokens=add_special_tokens,
                max_concurrency=self.max_concurrency,
            )
        )

    def count(self, texts: Sequence[str], *, prompt_name: str | None = None) -> list[int | None]:
        """Tokens the endpoint counts against ``max_input_length`` (special tokens included;
        None for a text over TEI's character limit)."""
        items = check_texts(texts)
        call = count_tokens(
            self, items, prompt_name=prompt_name, max_concurrency=self.max_concurrency
        )
        return self.run(call)

    def max_input_length(self) -> int | None:
        """The endpoint's ``max_input_length`` (``GET /info``), None when it does not say."""
        return self.run(endpoint_limits(self)).max_input_length
