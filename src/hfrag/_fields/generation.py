"""The LLM settings both frameworks' adapters share, and the task clients built from them.

:class:`GenerationFields` adds the generation options, ``provider``, ``task`` and ``streaming``
to the connection fields, and builds the :class:`~hfrag.tasks.ChatClient` and
:class:`~hfrag.tasks.TextGenerationClient` an adapter calls (each once, rebuilt after a field
changes). The options are checked by :class:`~hfrag.tasks.GenerationOptions` at construction.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from pydantic import AliasChoices, Field, model_validator
from typing_extensions import Self

from hfrag._fields.connection import InferenceFields
from hfrag.tasks import ChatClient, GenerationOptions, TextGenerationClient

__all__ = ["GenerationFields"]


class _Clients(NamedTuple):
    """The two clients one set of generation fields describes, cached and closed together."""

    chat: ChatClient
    text: TextGenerationClient

    def close(self) -> None:
        self.chat.close()
        self.text.close()


class GenerationFields(InferenceFields):
    """Generation options and routing; the task clients built from all fields."""

    provider: str | None = Field(
        default=None,
        description=(
            "Router provider for a model id, sent as 'model:provider' (e.g. 'together'), or a "
            "routing policy ('fastest', 'cheapest'); None lets the router choose."
        ),
    )
    task: Literal["auto", "text-generation", "chat"] = Field(
        default="auto",
        description=(
            "Prompt-in/text-out wire form: 'auto' uses chat completions for router models and "
            "chat-only endpoints and TGI /generate for a TGI endpoint; 'text-generation' or "
            "'chat' force one."
        ),
    )
    max_new_tokens: int | None = Field(
        default=None,
        validation_alias=AliasChoices("max_new_tokens", "max_tokens"),
        description="Most tokens to generate (alias max_tokens); None: the server's default.",
    )
    temperature: float | None = Field(
        default=None, description="Sampling temperature (0: greedy); None: server default."
    )
    top_p: float | None = Field(default=None, description="Nucleus sampling mass, in (0, 1].")
    top_k: int | None = Field(default=None, description="Sample from the k most likely tokens.")
    repetition_penalty: float | None = Field(
        default=None, description="Penalty on repeated tokens (> 0; 1.0 is none)."
    )
    frequency_penalty: float | None = Field(
        default=None, description="Penalty by token frequency so far, in [-2, 2]."
    )
    presence_penalty: float | None = Field(
        default=None, description="Penalty on tokens present so far, in [-2, 2] (chat only)."
    )
    stop: list[str] | None = Field(
        default=None,
        validation_alias=AliasChoices("stop", "stop_sequences"),
        description="Stop sequences; generation ends there and they are trimmed from the text.",
    )
    seed: int | None = Field(default=None, description="Random seed for sampling.")
    do_sample: bool | None = Field(
        default=None, description="Sample instead of greedy decoding (text-generation)."
    )
    return_full_text: bool = Field(
        default=False, description="Return the prompt followed by the generated text."
    )
    truncate: int | None = Field(
        default=None, description="Keep only the last N prompt tokens (text-generation only)."
    )
    typical_p: float | None = Field(default=None, description="Typical decoding mass, in (0, 1).")
    watermark: bool | None = Field(
        default=None, description="Ask TGI to watermark the output (text-generation only)."
    )
    logprobs: bool | None = Field(
        default=None, description="Ask for the answer tokens' log-probabilities."
    )
    top_logprobs: int | None = Field(
        default=None,
        description="Also the N most likely tokens at each position (0-20; implies logprobs).",
    )
    reasoning_effort: str | None = Field(
        default=None,
        description=(
            "How hard a reasoning model thinks: 'none', 'minimal', 'low', 'medium', 'high' or "
            "'xhigh' (chat completions)."
        ),
    )
    enable_thinking: bool | None = Field(
        default=None,
        description=(
            "Turn a hybrid model's thinking on or off (sent as chat_template_kwargs."
            "enable_thinking, as vLLM, SGLang and TGI take it)."
        ),
    )
    split_reasoning: bool = Field(
        default=True,
        description=(
            "Split a leading <think>...</think> out of the answer into the reasoning (models "
            "that inline it, e.g. Qwen3 or DeepSeek-R1 behind TGI); False keeps the text as sent."
        ),
    )
    send_reasoning: bool = Field(
        default=False,
        description=(
            "Send an assistant turn's reasoning back in later turns (as reasoning_content). "
            "Off by default: the router's input messages have no reasoning field."
        ),
    )
    streaming: bool = Field(
        default=False, description="Stream tokens by default (invoke still returns the whole)."
    )
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Anything else for the request: merged into text-generation 'parameters' or into "
            "the chat body."
        ),
    )

    @model_validator(mode="after")
    def _build_clients_now(self) -> Self:
        self._clients()  # raises ConfigurationError (a ValueError) for bad settings
        return self

    def generation_options(self) -> GenerationOptions:
        """The :class:`~hfrag.tasks.GenerationOptions` these fields describe."""
        return GenerationOptions(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            repetition_penalty=self.repetition_penalty,
            frequency_penalty=self.frequency_penalty,
            presence_penalty=self.presence_penalty,
            stop=tuple(self.stop or ()),
            seed=self.seed,
            do_sample=self.do_sample,
            return_full_text=self.return_full_text,
            truncate=self.truncate,
            typical_p=self.typical_p,
            watermark=self.watermark,
            logprobs=self.logprobs,
            top_logprobs=self.top_logprobs,
            reasoning_effort=self.reasoning_effort,
            enable_thinking=self.enable_thinking,
            split_reasoning=self.split_reasoning,
            send_reasoning=self.send_reasoning,
            model_kwargs=dict(self.model_kwargs),
        )

    def identifying_params(self) -> dict[str, Any]:
        """The target and every generation setting that is set (for caches and tracing)."""
        params: dict[str, Any] = {"model": self._target_name(), "provider": self.provider}
        params["task"] = self.task
        for name in GenerationFields.model_fields:
            value = getattr(self, name)
            if name not in InferenceFields.model_fields and value not in (None, {}, []):
                params[name] = value
        return params

    def _clients(self) -> _Clients:
        return self._cached_client(GenerationFields, self._build_clients)

    def _build_clients(self) -> _Clients:
        options = self.generation_options()
        connection = self._connection()
        chat = ChatClient(**connection, provider=self.provider, options=options)
        text = TextGenerationClient(
            **connection, provider=self.provider, task=self.task, options=options
        )
        return _Clients(chat, text)

    def chat_client(self) -> ChatClient:
        """The chat-completions client these fields describe."""
        return self._clients()[0]

    def text_generation_client(self) -> TextGenerationClient:
        """The prompt-in/text-out client these fields describe (``task`` applies)."""
        return self._clients()[1]
