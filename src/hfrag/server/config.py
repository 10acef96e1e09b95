"""Configuration of the local server: which models it serves and how it validates requests.

``ServerConfig()`` serves four hashing models (see ``default_models``); the first model is the
primary one, answering the TEI/TGI routes that name no model (``POST /``, ``/info``). ``/embed``,
``/rerank``, ``/predict`` and ``/generate`` use the first model of the kind they need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from hfrag.server.faults import FaultConfig

__all__ = ["ModelKind", "ModelSpec", "ServerConfig", "default_models"]

ModelKind = Literal["embed", "rerank", "generate", "sparse"]
KINDS: tuple[str, ...] = ("embed", "rerank", "generate", "sparse")

DEFAULT_PROMPTS: Mapping[str, str] = {"query": "query: ", "document": "passage: "}


@dataclass(frozen=True)
class ModelSpec:
    """One served model.

    Attributes:
        name: the model id clients use (``org/name``), in router URLs and chat ``model``.
        kind: ``embed`` (feature extraction), ``rerank`` (pair classification), ``generate``,
            or ``sparse`` (TEI's ``/embed_sparse``, see ``backends_sparse``).
        backend: any object satisfying the protocol of ``kind`` (see ``backends``).
        pooling: False makes feature-extraction return per-token vectors, like a router model
            without a pooling head (``[n][1][tokens][dim]`` on the router layout, as recorded;
            ``[n][tokens][dim]`` on TEI's routes).
        max_input_length: tokens per input (per pair for rerank, per prompt for generate).
        prompts: Sentence-Transformers prompts, selectable with ``prompt_name``.
        max_total_tokens: prompt plus new tokens limit of a generator (TGI's option).
        labels: output labels of a rerank model (a cross-encoder has one).
        unused_kwargs: text-generation parameters the router refuses for this model, as the real
            router's hf-inference does for a model served by the transformers pipeline instead
            of TGI (400 ``The following `model_kwargs` are not used by the model: [...]``;
            recorded for google/flan-t5-large and gpt2). Empty: a TGI model.
    """

    name: str
    kind: ModelKind
    backend: Any
    pooling: bool = True
    max_input_length: int = 512
    prompts: Mapping[str, str] = field(default_factory=dict)
    max_total_tokens: int | None = None
    labels: tuple[str, ...] = ("LABEL_0",)
    unused_kwargs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"model kind must be one of {KINDS}, got {self.kind!r}")
        if not self.name:
            raise ValueError("model name must not be empty")
        if self.max_input_length < 1:
            raise ValueError("max_input_length must be at least 1")

    @property
    def total_tokens(self) -> int:
        """Prompt plus generated tokens allowed (defaults to twice ``max_input_length``)."""
        return self.max_total_tokens or 2 * self.max_input_length


def default_models(embed_dim: int = 384, seed: int = 0) -> list[ModelSpec]:
    """The four default models, all backed by one ``HashingBackend(embed_dim, seed)``; the
    generator answers tools and ``response_format`` by the rule of ``tools.RuleTools``."""
    from hfrag.server.hashing import HashingBackend
    from hfrag.server.tools import RuleTools

    backend = HashingBackend(dim=embed_dim, seed=seed)
    return [
        ModelSpec("hfrag/hash-embed", "embed", backend, prompts=dict(DEFAULT_PROMPTS)),
        ModelSpec(
            "hfrag/hash-embed-tokens",
            "embed",
            backend,
            pooling=False,
            prompts=dict(DEFAULT_PROMPTS),
        ),
        ModelSpec("hfrag/hash-rerank", "rerank", backend),
        ModelSpec(
            "hfrag/extractive-gen",
            "generate",
            RuleTools(backend),
            max_input_length=4096,
            max_total_tokens=8192,
        ),
    ]


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs; ``ServerConfig()`` is a useful default.

    Attributes:
        models: served models; the first is the primary.
        api_key: when set, inference routes and ``/info`` want exactly ``Authorization: Bearer K``
            (401 otherwise); ``/health`` stays public, as in TEI.
        max_client_batch_size: inputs per request before a 413 "batch size" error.
        auto_truncate: the default of ``truncate`` when a request does not say.
        faults: faults active from the start (also what ``reset()`` returns to).
        payload_limit: request body bytes accepted (TEI's default 2 MB), 413 above.
        max_stop_sequences: TGI's limit on ``stop``.
        max_concurrent_requests: the capacity TEI's ``GET /info`` advertises (TEI's default 512),
            and the requests that may wait for each model thread before TEI's 429 ``Model is
            overloaded`` (see ``runtime.ModelRuntime``); the simulated latency's concurrency is
            set by the faults' ``max_concurrency``.
        validation_status: the status of TEI ``Validation`` errors (batch size, too-long input,
            unknown prompt). TEI maps them to 413; set 422 to model a server or proxy that
            answers 422, which clients must handle as well.
        provider_mapping: what the Hub model API (``GET /api/models/{id}``) says about each
            model's Inference Providers: ``{model_id: {provider: {"providerId", "status",
            "task"}}}``. None derives one from the served models (see ``routes_hub``).
        mapping_form: how that API sends it: ``"dict"`` (as ``model_info``) or ``"list"``
            (as ``list_models``, each entry with a ``"provider"`` key).
                max_batch_tokens: estimated tokens per dynamic embedding batch.
        batch_window: seconds an idle embedding thread waits for requests to batch.
    """

    models: Sequence[ModelSpec] = field(default_factory=default_models)
    api_key: str | None = None
    max_client_batch_size: int = 32
    auto_truncate: bool = False
    faults: FaultConfig = field(default_factory=FaultConfig)
    payload_limit: int = 2_000_000
    max_stop_sequences: int = 4
    validation_status: int = 413
    provider_mapping: Mapping[str, Mapping[str, Mapping[str, str]]] | None = None
    mapping_form: Literal["dict", "list"] = "dict"
    max_concurrent_requests: int = 512
    max_batch_tokens: int = 16384
    batch_window: float = 0.002

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("a server needs at least one model")
        names = [m.name for m in self.models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate model names: {duplicates}")
        if self.max_client_batch_size < 1:
            raise ValueError("max_client_batch_size must be at least 1")
        if self.max_concurrent_requests < 1:
            raise ValueError("max_concurrent_requests must be at least 1")
        if self.max_batch_tokens < 1 or self.batch_window < 0:
            raise ValueError("max_batch_tokens must be positive, batch_window >= 0")
        object.__setattr__(self, "models", tuple(self.models))

    @classmethod
    def default(
        cls, primary: str | None = None, *, embed_dim: int = 384, seed: int = 0, **overrides: Any
    ) -> ServerConfig:
        """The default models with ``primary`` moved first; other fields from ``overrides``.

        Example: ``ServerConfig.default(primary="hfrag/hash-rerank", api_key="k")``.
        """
        models = default_models(embed_dim=embed_dim, seed=seed)
        if primary is not None:
            chosen = [m for m in models if m.name == primary]
            if not chosen:
                known = ", ".join(m.name for m in models)
                raise ValueError(f"unknown primary model {primary!r}; known: {known}")
            models = chosen + [m for m in models if m.name != primary]
        return cls(models=models, **overrides)

    @property
    def primary(self) -> ModelSpec:
        """The first model."""
        return self.models[0]

    def model(self, name: str) -> ModelSpec | None:
        """The model called ``name``, or None."""
        for spec in self.models:
            if spec.name == name:
                return spec
        return None

    def first_of(self, kind: str) -> ModelSpec | None:
        """The first model of ``kind``, or None."""
        for spec in self.models:
            if spec.kind == kind:
                return spec
        return None

    def with_primary(self, name: str) -> ServerConfig:
        """This config with model ``name`` moved first."""
        spec = self.model(name)
        if spec is None:
            raise ValueError(f"unknown model {name!r}")
        return replace(self, models=[spec, *[m for m in self.models if m.name != name]])
