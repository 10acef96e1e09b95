"""The rerank settings the framework adapters share, and the client built from them.

:class:`RerankFields` adds the rerank options to the connection fields and builds the one
:class:`~hfrag.tasks.RerankClient` an adapter calls (LangChain's cross-encoder uses these);
:class:`RankingFields` adds what a reranker keeps of the ranking (``top_n``,
``score_threshold``), for LangChain's document compressor and LlamaIndex's postprocessor.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator
from typing_extensions import Self

from hfrag._fields.connection import InferenceFields
from hfrag.tasks import RerankClient, RerankOptions
from hfrag.tasks.rerank import check_cut

__all__ = ["RankingFields", "RerankFields"]

_OPTIONS = RerankOptions()


class RerankFields(InferenceFields):
    """The rerank options, and the :class:`~hfrag.tasks.RerankClient` built from all fields.

    The client is built once at validation (which surfaces configuration errors at construction)
    and rebuilt on next use if a field was reassigned since.
    """

    accepted_tasks: ClassVar[tuple[str, ...]] = ("text-classification", "text-ranking")

    protocol: Literal["auto", "hf-inference", "tei", "cohere", "sentence-similarity"] = Field(
        default=_OPTIONS.protocol,
        description=(
            "Wire form: 'hf-inference' (text classification of (query, document) pairs: the "
            "router, Inference Endpoints), 'tei' (POST /rerank), 'cohere' (POST /v1/rerank: "
            "Infinity, vLLM, Jina, Cohere), 'sentence-similarity' (an embedding model's cosine "
            "similarities, hf-inference's pipeline). 'auto': a model id is hf-inference; an "
            "endpoint URL ending in /rerank or /v1/rerank names its form, else GET /info "
            "decides, once."
        ),
    )
    batch_size: int = Field(
        default=_OPTIONS.batch_size,
        description=(
            "Documents per request; a TEI endpoint's max_client_batch_size is respected and a "
            "batch the server rejects as too large is split automatically."
        ),
    )
    max_concurrency: int = Field(
        default=_OPTIONS.max_concurrency, description="Requests in flight at once for one call."
    )
    truncate: bool | None = Field(
        default=_OPTIONS.truncate,
        description=(
            "Ask the server to truncate pairs longer than the model's limit (TEI 'truncate', the "
            "pipeline's 'truncation'; the Cohere form truncates as its server decides)."
        ),
    )
    truncation_direction: Literal["left", "right"] | None = Field(
        default=_OPTIONS.truncation_direction,
        description="Which end TEI cuts when truncating ('left' or 'right'); None: server default.",
    )
    raw_scores: bool = Field(
        default=_OPTIONS.raw_scores,
        description=(
            "Raw logits instead of probabilities (TEI raw_scores, the pipeline's "
            "function_to_apply='none'); the Cohere form always gives probabilities."
        ),
    )
    function_to_apply: Literal["sigmoid", "softmax", "none"] | None = Field(
        default=_OPTIONS.function_to_apply,
        description=(
            "hf-inference only: the pipeline's function on the logits; None: the server's "
            "(sigmoid for a one-label cross-encoder, softmax for several labels)."
        ),
    )
    label: str | None = Field(
        default=_OPTIONS.label,
        description=(
            "hf-inference only: the label meaning 'relevant' in a multi-label classifier. "
            "Default: the only label; else one named relevant/entailment/positive/yes/true; "
            "else LABEL_1 of a LABEL_0/LABEL_1 model."
        ),
    )
    served_model: str | None = Field(
        default=_OPTIONS.served_model,
        description="Cohere form only: the 'model' of the body (vLLM, Infinity, Jina, Cohere).",
    )

    @model_validator(mode="after")
    def _build_client_now(self) -> Self:
        self.rerank_client()  # raises ConfigurationError (a ValueError) for bad settings
        return self

    def rerank_client(self) -> RerankClient:
        """The task client these fields describe (built once, rebuilt after a field changes)."""
        return self._cached_client(RerankFields, self._build_client)

    def _build_client(self) -> RerankClient:
        options = RerankOptions(
            protocol=self.protocol,
            batch_size=self.batch_size,
            max_concurrency=self.max_concurrency,
            truncate=self.truncate,
            truncation_direction=self.truncation_direction,
            raw_scores=self.raw_scores,
            function_to_apply=self.function_to_apply,
            label=self.label,
            served_model=self.served_model,
        )
        return RerankClient(**self._connection(), options=options)


class RankingFields(RerankFields):
    """:class:`RerankFields` and what to keep of the ranking."""

    top_n: int | None = Field(
        default=3, description="Documents to keep, best first; None keeps all."
    )
    score_threshold: float | None = Field(
        default=None,
        description="Drop documents scored below this (applied before top_n); None keeps all.",
    )

    @model_validator(mode="after")
    def _check_cut(self) -> Self:
        check_cut(self.top_n, self.score_threshold)  # ConfigurationError (a ValueError)
        return self
