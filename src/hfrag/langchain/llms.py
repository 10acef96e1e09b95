"""LangChain ``BaseLLM`` (a prompt in, text out) over Hugging Face inference: fields and calls.

The wire form is the task client's choice (:class:`hfrag.tasks.TextGenerationClient`):
chat completions with the prompt as one user message for router models and chat-only
endpoints, TGI ``/generate`` for a TGI endpoint, or what ``task`` forces.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any, ClassVar, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseLLM
from langchain_core.outputs import Generation, GenerationChunk, LLMResult
from pydantic import ConfigDict

from hfrag._fields import ADAPTER_CONFIG
from hfrag.langchain._generation import LangChainGenerationFields
from hfrag.tasks import (
    Accumulator,
    GenerationOptions,
    GenerationOutput,
    TextDelta,
    Usage,
)

__all__ = ["HuggingFaceInferenceLLM"]


def _usage_dict(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    counts = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    return {k: v for k, v in counts.items() if v is not None} or None


def _info(out: GenerationOutput) -> dict[str, Any]:
    """``generation_info``: finish reason, usage, and, when the server sent them, the
    reasoning (``reasoning_content``, never in the text) and ``logprobs`` (ChatOpenAI's shape)."""
    info: dict[str, Any] = {"finish_reason": out.finish_reason}
    usage_dict = _usage_dict(out.usage)
    if usage_dict:
        info["token_usage"] = usage_dict
    if out.reasoning is not None:
        info["reasoning_content"] = out.reasoning
    if out.logprobs is not None:
        info["logprobs"] = {"content": [t.as_openai() for t in out.logprobs]}
    return info


def _generation(out: GenerationOutput) -> Generation:
    return Generation(text=out.text, generation_info=_info(out))


class HuggingFaceInferenceLLM(LangChainGenerationFields, BaseLLM):
    """Text completion from a Hub model on the router or from any LLM endpoint.

    With ``task="auto"`` (default) a router model id and a chat-only endpoint are sent the
    prompt as one chat message (most router models are chat-only), and a TGI endpoint gets
    ``/generate``; ``task="text-generation"`` or ``"chat"`` forces one. Stop sequences are
    trimmed; ``streaming=True`` makes ``invoke`` stream internally (callbacks see each token).

    Example::

        from hfrag.langchain import HuggingFaceInferenceLLM

        llm = HuggingFaceInferenceLLM(endpoint_url="http://127.0.0.1:8082", max_new_tokens=64)
        llm.invoke("Question: where is Paris?")
        # or: HuggingFaceInferenceLLM(model="HuggingFaceTB/SmolLM3-3B", provider="fastest")
    """

    # Declared here, not only in the mixin: pydantic merges base configs in MRO order, and
    # LangChain's base would otherwise turn extra="forbid" back into "ignore".
    model_config = ConfigDict(**ADAPTER_CONFIG, arbitrary_types_allowed=True)
    _ls_model_type: ClassVar[Literal["chat", "llm"]] = "llm"

    @property
    def _llm_type(self) -> str:
        return "huggingface-inference"

    def _options(self, kwargs: dict[str, Any]) -> GenerationOptions:
        options = self.generation_options()
        if kwargs:
            options = replace(options, model_kwargs={**options.model_kwargs, **kwargs})
        return options

    def _llm_output(self) -> dict[str, Any]:
        return {"model_name": self._target_name()}

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        generations = []
        for prompt in prompts:
            if self.streaming:
                merged: GenerationChunk | None = None
                for chunk in self._stream(prompt, stop, run_manager, **kwargs):
                    merged = chunk if merged is None else merged + chunk
                assert merged is not None
                generations.append(
                    [Generation(text=merged.text, generation_info=merged.generation_info)]
                )
            else:
                client = self.text_generation_client()
                out = client.generate(prompt, stop=stop, options=self._options(kwargs))
                generations.append([_generation(out)])
        return LLMResult(generations=generations, llm_output=self._llm_output())

    async def _agenerate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        async def one(prompt: str) -> Generation:
            if self.streaming:
                merged: GenerationChunk | None = None
                async for chunk in self._astream(prompt, stop, run_manager, **kwargs):
                    merged = chunk if merged is None else merged + chunk
                assert merged is not None
                return Generation(text=merged.text, generation_info=merged.generation_info)
            client = self.text_generation_client()
            return _generation(
                await client.agenerate(prompt, stop=stop, options=self._options(kwargs))
            )

        outs = await asyncio.gather(*(one(p) for p in prompts))
        return LLMResult(generations=[[g] for g in outs], llm_output=self._llm_output())

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        client = self.text_generation_client()
        rest = Accumulator()  # all but the text, which goes out as it comes
        for item in client.stream(prompt, stop=stop, options=self._options(kwargs)):
            if isinstance(item, TextDelta):
                chunk = GenerationChunk(text=item.text)
                if run_manager:
                    run_manager.on_llm_new_token(item.text, chunk=chunk)
                yield chunk
            else:
                rest.add(item)
        yield GenerationChunk(text="", generation_info=_info(rest.output()))

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        client = self.text_generation_client()
        rest = Accumulator()
        stream = client.astream(prompt, stop=stop, options=self._options(kwargs))
        try:
            async for item in stream:
                if isinstance(item, TextDelta):
                    chunk = GenerationChunk(text=item.text)
                    if run_manager:
                        await run_manager.on_llm_new_token(item.text, chunk=chunk)
                    yield chunk
                else:
                    rest.add(item)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        yield GenerationChunk(text="", generation_info=_info(rest.output()))
