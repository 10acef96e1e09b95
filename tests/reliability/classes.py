"""Every public class of hfrag, each with its main method, for tests that must cover them all.

A :class:`Subject` builds its object against a local server's router layout (``router_url``) and
calls its main method with one input: a list of texts for embeddings, the documents for rerankers
(query fixed), a prompt or messages for chat and LLMs. The adapters that take framework objects
(LangChain ``Document``, LlamaIndex ``NodeWithScore``) get them built from the input when it is a
list of strings, and the input itself otherwise (what a careless caller would pass).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.llm import LLAMA

EMBED = "hfrag/hash-embed"
RERANK = "hfrag/hash-rerank"
QUERY = "which record is about rivers?"
#: A good input for each kind of class.
INPUTS = {"embed": ["alpha", "beta"], "rerank": ["alpha", "beta"], "generate": "Say hello."}


@dataclass(frozen=True)
class Subject:
    """One public class: ``kind`` is ``embed``, ``rerank`` or ``generate``."""

    name: str
    kind: str
    make: Callable[..., Any]
    call: Callable[[Any, Any], Any]

    def __str__(self) -> str:
        return self.name

    def build(self, url: str, **kw: Any) -> Any:
        model = {"embed": EMBED, "rerank": RERANK, "generate": LLAMA}[self.kind]
        return self.make(model=model, router_url=url, **kw)


def _all_str(value: Any) -> bool:
    """A list, tuple or 1-D array of strings: what the framework objects are built from."""
    ordered = isinstance(value, (list, tuple)) or getattr(value, "ndim", None) == 1
    return ordered and all(isinstance(v, str) for v in value)


def _lc_docs(value: Any) -> Any:
    from langchain_core.documents import Document

    return [Document(page_content=v) for v in value] if _all_str(value) else value


def _li_nodes(value: Any) -> Any:
    from llama_index.core.schema import NodeWithScore, TextNode

    return [NodeWithScore(node=TextNode(text=v)) for v in value] if _all_str(value) else value


def _li_postprocess(obj: Any, value: Any) -> Any:
    from llama_index.core.schema import QueryBundle

    return obj.postprocess_nodes(_li_nodes(value), query_bundle=QueryBundle(QUERY))


def _ray_call(obj: Any, value: Any) -> Any:
    return obj({"text": value})["embedding"]


def _tasks(name: str) -> Callable[..., Any]:
    def make(**kw: Any) -> Any:
        import hfrag.tasks

        return getattr(hfrag.tasks, name)(**kw)

    return make


def _lc(name: str) -> Callable[..., Any]:
    def make(**kw: Any) -> Any:
        import hfrag.langchain

        return getattr(hfrag.langchain, name)(**kw)

    return make


def _li(name: str) -> Callable[..., Any]:
    def make(**kw: Any) -> Any:
        import hfrag.llama_index

        return getattr(hfrag.llama_index, name)(**kw)

    return make


def _ray(**kw: Any) -> Any:
    from hfrag.ray import Embedder

    return Embedder(**kw)


def _chat_messages(value: Any) -> Any:
    """A prompt string becomes one user message; anything else is passed as the messages."""
    return [{"role": "user", "content": value}] if isinstance(value, str) else value


def _lc_chat_messages(value: Any) -> Any:
    return [("user", value)] if isinstance(value, str) else value


def _li_chat(obj: Any, value: Any) -> Any:
    from llama_index.core.llms import ChatMessage

    messages = [ChatMessage(role="user", content=value)] if isinstance(value, str) else value
    return obj.chat(messages).message.content


SUBJECTS = [
    Subject("EmbeddingsClient", "embed", _tasks("EmbeddingsClient"), lambda o, v: o.embed(v)),
    Subject(
        "lc.HuggingFaceInferenceEmbeddings",
        "embed",
        _lc("HuggingFaceInferenceEmbeddings"),
        lambda o, v: o.embed_documents(v),
    ),
    Subject(
        "li.HuggingFaceInferenceEmbedding",
        "embed",
        _li("HuggingFaceInferenceEmbedding"),
        lambda o, v: o.get_text_embedding_batch(v),
    ),
    Subject("ray.Embedder", "embed", _ray, _ray_call),
    Subject("RerankClient", "rerank", _tasks("RerankClient"), lambda o, v: o.score(QUERY, v)),
    Subject(
        "lc.HuggingFaceInferenceReranker",
        "rerank",
        _lc("HuggingFaceInferenceReranker"),
        lambda o, v: o.compress_documents(_lc_docs(v), QUERY),
    ),
    Subject(
        "lc.HuggingFaceInferenceCrossEncoder",
        "rerank",
        _lc("HuggingFaceInferenceCrossEncoder"),
        lambda o, v: o.score([(QUERY, t) for t in v] if _all_str(v) else v),
    ),
    Subject(
        "li.HuggingFaceInferenceRerank",
        "rerank",
        _li("HuggingFaceInferenceRerank"),
        _li_postprocess,
    ),
    Subject(
        "ChatClient",
        "generate",
        _tasks("ChatClient"),
        lambda o, v: o.chat(_chat_messages(v)).text,
    ),
    Subject(
        "TextGenerationClient",
        "generate",
        _tasks("TextGenerationClient"),
        lambda o, v: o.generate(v).text,
    ),
    Subject(
        "lc.ChatHuggingFaceInference",
        "generate",
        _lc("ChatHuggingFaceInference"),
        lambda o, v: o.invoke(_lc_chat_messages(v)).content,
    ),
    Subject(
        "lc.HuggingFaceInferenceLLM",
        "generate",
        _lc("HuggingFaceInferenceLLM"),
        lambda o, v: o.invoke(v),
    ),
    Subject("li.HuggingFaceInferenceLLM", "generate", _li("HuggingFaceInferenceLLM"), _li_chat),
]


def close(obj: Any) -> None:
    """Close whatever client the object holds (adapters hold theirs in a shared cache)."""
    closer = getattr(obj, "close", None)
    if callable(closer):
        closer()
