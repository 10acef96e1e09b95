"""Shared by the LLM tests: a server that also serves the README's chat model ids, and prompts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hfrag.server import ServerConfig
from hfrag.server.config import ModelSpec, default_models
from hfrag.server.testing import ServerHandle, serve_in_thread

#: Chat/LLM model ids the README uses; the local server serves them with the extractive generator.
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
SMOL = "HuggingFaceTB/SmolLM3-3B"
#: A prompt whose extractive answer is known: "Paris is the capital of France."
PROMPT = (
    "Berlin is the capital of Germany. Paris is the capital of France. Rome is in Italy.\n"
    "Question: What is the capital of France?"
)
ANSWER = "Paris is the capital of France."


def llm_config(primary: str | None = None, **overrides: object) -> ServerConfig:
    """The default models plus the two README LLM ids (``primary`` first, if given)."""
    models = default_models()
    backend = models[3].backend  # the hashing generator with the tool-call rule
    models += [
        ModelSpec(name, "generate", backend, max_input_length=4096, max_total_tokens=8192)
        for name in (LLAMA, SMOL)
    ]
    if primary is not None:
        models = [m for m in models if m.name == primary] + [m for m in models if m.name != primary]
    return ServerConfig(models=models, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def llm_server() -> Iterator[ServerHandle]:
    """A TGI-like server for a test module (an LLM is the primary model: ``/info`` is TGI's)."""
    with serve_in_thread(llm_config(primary=LLAMA)) as srv:
        yield srv


@pytest.fixture
def srv(llm_server: ServerHandle) -> ServerHandle:
    """The module's LLM server with fresh counters, scripts and faults."""
    llm_server.reset()
    return llm_server


#: Model ids the local server answers as reasoning models (see ``hfrag.server.traits``): the
#: inline ``<think>`` form (TGI), ``reasoning_content`` (vLLM < 0.11, DeepSeek), ``reasoning``.
THINK = "Qwen/Qwen3-think"
REASONING_CONTENT = "deepseek-ai/DeepSeek-R1-reasoning-content"
REASONING = "openai/gpt-oss-reasoning"
REASONING_MODELS = (THINK, REASONING_CONTENT, REASONING)
#: Models that lack a feature: response_format; response_format and tools; image inputs.
NO_FORMAT = "hfrag/no-response-format-gen"
NO_FORMAT_NO_TOOLS = "hfrag/no-response-format-no-tools-gen"
TEXT_ONLY = "hfrag/text-only-gen"
#: A reasoning model that wants its reasoning back after a tool call (DeepSeek's thinking mode).
WANTS_REASONING = "deepseek-ai/DeepSeek-V4-wants-reasoning"


def traits_config(primary: str = THINK) -> ServerConfig:
    """The LLM config plus the reasoning models and the models lacking a feature."""
    base = llm_config()
    backend = next(m.backend for m in base.models if m.name == LLAMA)  # with the tool-call rule
    extra = [
        ModelSpec(name, "generate", backend, max_input_length=4096, max_total_tokens=8192)
        for name in (*REASONING_MODELS, NO_FORMAT, NO_FORMAT_NO_TOOLS, TEXT_ONLY, WANTS_REASONING)
    ]
    models = [*extra, *base.models]
    models = [m for m in models if m.name == primary] + [m for m in models if m.name != primary]
    return ServerConfig(models=models)


@pytest.fixture(scope="module")
def traits_server() -> Iterator[ServerHandle]:
    """A server whose primary model (``/generate``, TGI ``/info``) reasons inline."""
    with serve_in_thread(traits_config()) as srv:
        yield srv


#: What every reasoning model of the local server reasons (``hfrag.server.traits``).
REASONING_TEXT = "The answer is the context sentence that shares the most words with the question."


@pytest.fixture
def traits_srv(traits_server: ServerHandle) -> ServerHandle:
    """The module's traits server with fresh counters, scripts and faults."""
    traits_server.reset()
    return traits_server
