"""The token-splitter settings both frameworks' splitters share, and the chunker built from them.

:class:`SplitterFields` adds ``chunk_size`` and ``chunk_overlap`` (in the endpoint's tokens) to
the connection fields and builds the :class:`~hfrag.tasks.chunking.TokenChunker` over a
:class:`~hfrag.tasks.tokens.TokenizerClient` that both splitters call.
"""

from __future__ import annotations

from pydantic import Field, model_validator
from typing_extensions import Self

from hfrag._fields.connection import InferenceFields
from hfrag.tasks.chunking import Chunk, TokenChunker
from hfrag.tasks.inputs import check_texts
from hfrag.tasks.tokens import TokenizerClient

__all__ = ["SplitterFields"]


class SplitterFields(InferenceFields):
    """Where the tokenizer is (a TEI endpoint) and how big chunks are, in its tokens."""

    chunk_size: int | None = Field(
        default=None,
        description=(
            "Most tokens per chunk as the endpoint counts them (special tokens included); "
            "None: the endpoint's max_input_length from GET /info."
        ),
    )
    chunk_overlap: int = Field(
        default=0, description="Tokens shared by consecutive chunks (fewer than a chunk holds)."
    )

    @model_validator(mode="after")
    def _build_client_now(self) -> Self:
        self.chunker()  # raises ConfigurationError (a ValueError) for bad settings
        return self

    def chunker(self) -> TokenChunker:
        """The chunker these fields describe (built once, rebuilt after a field changes)."""
        return self._cached_client(SplitterFields, self._build_chunker)

    def _build_chunker(self) -> TokenChunker:
        client = TokenizerClient(**self._connection())
        return TokenChunker(client, self.chunk_size, self.chunk_overlap)

    def tokenizer_client(self) -> TokenizerClient:
        """The endpoint's tokenizer the chunker asks."""
        client = self.chunker().client
        assert isinstance(client, TokenizerClient)
        return client

    def split_chunks(self, texts: list[str]) -> list[list[Chunk]]:
        """The chunks of each text (one batched round of ``/tokenize`` for all of them)."""
        items = check_texts([t for t in texts if t.strip()]) if texts else []
        chunker = self.chunker()
        found = iter(chunker.client.run(chunker.chunks(items)) if items else [])
        return [next(found) if text.strip() else [] for text in texts]

    async def asplit_chunks(self, texts: list[str]) -> list[list[Chunk]]:
        """Async :meth:`split_chunks`."""
        items = check_texts([t for t in texts if t.strip()]) if texts else []
        chunker = self.chunker()
        found = iter(await chunker.client.arun(chunker.chunks(items)) if items else [])
        return [next(found) if text.strip() else [] for text in texts]
