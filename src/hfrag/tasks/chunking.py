"""Cutting texts into chunks that fit an endpoint's model, by the endpoint's own tokenizer.

:class:`TokenChunker` asks the endpoint (TEI ``/tokenize``, batched; :mod:`hfrag.tasks.tokens`)
for every text's tokens with character offsets, and cuts each text into spans of at most
``chunk_size`` tokens *as the endpoint counts them*: special tokens (``[CLS]``, ``[SEP]``...)
included. ``chunk_size`` defaults to the endpoint's ``max_input_length``; consecutive chunks
share ``chunk_overlap`` tokens.

- Cuts fall between words where they can (a token that follows whitespace or punctuation),
  inside a word only when one word is longer than a chunk: a cut inside a word could make the
  endpoint count more tokens for the chunk than for the same span of the whole text.
- A chunk is the exact substring ``text[start:stop]`` from its first token to its last, so it
  has no leading or trailing whitespace and its ``start`` is known exactly.
- Every chunk is counted again by the endpoint before it is returned; one that came out longer
  (a tokenizer whose tokens depend on their context) is cut again, shorter, until it fits.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from hfrag._checks import check_int
from hfrag.errors import ConfigurationError, MalformedResponseError
from hfrag.tasks.base import TaskClient
from hfrag.tasks.tokens import Token, count_tokens, endpoint_limits, tokenize

__all__ = ["Chunk", "TokenChunker", "cut"]

# How often a chunk the endpoint counts as too long is cut again (each time shorter).
_RECUTS = 4


@dataclass(frozen=True)
class Chunk:
    """One chunk: its text, where it starts and stops in the text it came from (characters),
    and the tokens the endpoint counts for it (special tokens included)."""

    text: str
    start: int
    stop: int
    tokens: int


def _located(tokens: Sequence[Token]) -> list[Token]:
    """The tokens that stand for text: special tokens without offsets cover none of it."""
    return [t for t in tokens if t.start is not None and t.stop is not None]


def _boundaries(text: str, tokens: Sequence[Token]) -> list[bool]:
    """Whether a chunk may start at each token (between words, or at punctuation)."""
    out = [True]
    for prev, token in itertools.pairwise(tokens):
        assert prev.stop is not None
        assert token.start is not None
        gap = token.start > prev.stop
        punctuation = (
            not text[token.start : token.start + 1].isalnum()
            or not text[prev.stop - 1 : prev.stop].isalnum()
        )
        out.append(gap or punctuation)
    return out


def cut(text: str, tokens: Sequence[Token], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Token index spans ``[i, j)`` of at most ``budget`` tokens, ``overlap`` shared, cut at
    word boundaries where possible (see the module docstring)."""
    n = len(tokens)
    if n == 0:
        return []
    ok = _boundaries(text, tokens)
    spans = []
    i = 0
    while True:
        j = min(i + budget, n)
        if j < n:
            back = next((b for b in range(j, i, -1) if ok[b]), None)
            j = back if back is not None else j  # one word longer than a chunk: cut inside it
        spans.append((i, j))
        if j >= n:
            return spans
        nxt = max(j - overlap, i + 1)
        while nxt < j and not ok[nxt]:
            nxt += 1
        i = nxt


class TokenChunker:
    """Chunks that fit ``client``'s endpoint, by its tokenizer (see the module docstring).

    Args:
        client: any task client of a TEI endpoint (its transports, retries and deadline are
            used), e.g. a :class:`~hfrag.tasks.tokens.TokenizerClient`.
        chunk_size: most tokens per chunk, special tokens included; None: the endpoint's
            ``max_input_length``.
        chunk_overlap: tokens shared by consecutive chunks (fewer than a chunk holds).
    """

    def __init__(
        self, client: TaskClient, chunk_size: int | None = None, chunk_overlap: int = 0
    ) -> None:
        check_int("chunk_size", chunk_size, minimum=1, optional=True)
        check_int("chunk_overlap", chunk_overlap, minimum=0)
        if chunk_size is not None and chunk_overlap >= chunk_size:
            raise ConfigurationError(
                f"chunk_overlap={chunk_overlap} must be less than chunk_size={chunk_size}"
            )
        self.client = client
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap

    def close(self) -> None:
        """Close the client's pooled connections."""
        self.client.close()

    async def _size(self) -> int:
        limit = (await endpoint_limits(self.client)).max_input_length
        if self.chunk_size is None:
            if limit is None:
                raise ConfigurationError(
                    f"{self.client.target.describe()} does not say its max_input_length "
                    "(GET /info): give chunk_size=..."
                )
            return limit
        if limit is not None and self.chunk_size > limit:
            raise ConfigurationError(
                f"chunk_size={self.chunk_size} is more than the endpoint's max_input_length "
                f"of {limit} tokens: chunks that long would be truncated"
            )
        return self.chunk_size

    async def chunks(self, texts: list[str]) -> list[list[Chunk]]:
        """The chunks of each text, in order."""
        size = await self._size()
        if self.chunk_overlap >= size:
            raise ConfigurationError(
                f"chunk_overlap={self.chunk_overlap} must be less than the chunk size of {size}"
            )
        # Special tokens the endpoint adds to every input: the same for any text.
        probe = await count_tokens(self.client, ["a"])
        specials = (probe[0] or 1) - len((await tokenize(self.client, ["a"]))[0])
        budget = size - specials
        if budget < 1:
            raise ConfigurationError(f"a chunk of {size} tokens holds no text: {specials} special")
        found = [_located(row) for row in await tokenize(self.client, texts)]
        spans = [
            [
                (tokens[i].start or 0, tokens[j - 1].stop or 0)
                for i, j in cut(text, tokens, budget, min(self.chunk_overlap, budget - 1))
            ]
            for text, tokens in zip(texts, found, strict=True)
        ]
        return await self._fitted(texts, spans, size, budget)

    async def _fitted(
        self, texts: list[str], spans: list[list[tuple[int, int]]], size: int, budget: int
    ) -> list[list[Chunk]]:
        """The spans as chunks, each counted by the endpoint; those over ``size`` cut again."""
        out: list[list[Chunk]] = [[] for _ in texts]
        todo = [(i, a, b, budget) for i, row in enumerate(spans) for a, b in row]
        for _ in range(_RECUTS + 1):
            if not todo:
                break
            counts = await count_tokens(self.client, [texts[i][a:b] for i, a, b, _ in todo])
            again = []
            for (i, a, b, allowed), n in zip(todo, counts, strict=True):
                if n is not None and n <= size:
                    out[i].append(Chunk(texts[i][a:b], a, b, n))
                    continue
                over = (n or size * 2) - size
                again.append((i, a, b, max(1, allowed - over)))
            todo = []
            for i, a, b, allowed in again:
                piece = texts[i][a:b]
                tokens = _located((await tokenize(self.client, [piece]))[0])
                if not tokens:  # cutting it again would drop it
                    raise MalformedResponseError(
                        f"{self.client.target.describe()} counts {piece[:40]!r}... as too long "
                        "but its /tokenize gives no token of its text",
                        status=200,
                        url=self.client.target.describe(),
                    )
                for x, y in cut(piece, tokens, allowed, 0):
                    first, last = tokens[x].start or 0, tokens[y - 1].stop or 0
                    todo.append((i, a + first, a + last, allowed))
        if todo:
            raise MalformedResponseError(
                f"{self.client.target.describe()} still counts {len(todo)} chunk(s) as longer "
                f"than {size} tokens after cutting them {_RECUTS} times by its own /tokenize: "
                "its /tokenize and its token counts disagree",
                status=200,
                url=self.client.target.describe(),
            )
        for row in out:
            row.sort(key=lambda c: (c.start, c.stop))
        return out
