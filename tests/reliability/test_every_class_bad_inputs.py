"""A catalogue of bad inputs, each with its expected outcome, through every public class.

Texts (embeddings: the texts; rerankers: the documents, query fixed) and prompts (chat and LLMs:
the prompt or the messages). An outcome is either ``OK`` (a correct result: one vector or score per
text, a non-empty answer) or the typed error the caller gets; never a KeyError, IndexError,
AttributeError or a hang.
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from hfrag.errors import HfragError, InferenceError, InputError, InvalidRequestError
from hfrag.server.testing import ServerHandle
from tests.reliability.classes import SUBJECTS, Subject, close

pytestmark = pytest.mark.timeout(120)

OK = "ok"
MB = "word " * 200_000  # 1 MB of text


def _gen() -> Iterator[str]:
    yield from ["a", "b"]


#: Rerankers leave empty documents out of the ranking (score -inf, with a warning) instead of
#: refusing the whole call.
SKIPPED = {"rerank": OK}

#: id -> (input factory, expected outcome for texts, {subject name: a different outcome}).
#: A factory, so that a generator is fresh for each class.
TEXTS: dict[str, tuple[Any, Any, dict[str, Any]]] = {
    "empty-list": (lambda: [], OK, {}),
    "empty-string": (lambda: [""], InputError, SKIPPED),
    "whitespace": (lambda: ["  \t\n "], InputError, SKIPPED),
    "one-empty-among-many": (lambda: ["a", "", "c"], InputError, SKIPPED),
    "none": (lambda: None, TypeError, {}),
    "none-item": (lambda: ["a", None], TypeError, {}),
    "bytes": (lambda: b"abc", TypeError, {}),
    "bytes-items": (lambda: [b"a", b"b"], TypeError, {}),
    "int": (lambda: 3, TypeError, {}),
    "int-items": (lambda: [1, 2], TypeError, {}),
    "float-items": (lambda: [1.5], TypeError, {}),
    "nan-item": (lambda: [math.nan], TypeError, {}),
    "bool-item": (lambda: [True], TypeError, {}),
    "dict": (lambda: {"a": 1}, TypeError, {}),
    "dict-items": (lambda: [{"text": "a"}], TypeError, {}),
    "set": (lambda: {"a", "b"}, TypeError, {}),
    "frozenset": (lambda: frozenset({"a"}), TypeError, {}),
    "generator": (_gen, TypeError, {}),
    "str-not-list": (lambda: "just one text", TypeError, {}),
    "nested-lists": (lambda: [["a", "b"], ["c"]], TypeError, {}),
    "tuple": (lambda: ("a", "b"), OK, {}),
    "numpy-str": (lambda: np.array(["a", "b", "c"]), OK, {}),
    "numpy-float": (lambda: np.array([1.0, 2.0]), TypeError, {}),
    "numpy-2d-str": (lambda: np.array([["a", "b"]]), TypeError, {}),
    "lone-surrogate": (lambda: ["ok", "bad \udcff"], InputError, {}),
    "high-surrogate-only": (lambda: ["\ud800"], InputError, {}),
    "control-chars": (lambda: ["a\x00b\x07c\x1b[31m"], OK, {}),
    "bidi-and-zero-width": (lambda: ["\u202eabc\u200b"], OK, {}),
    "emoji-and-cjk": (lambda: ["🙂 汉字 ﷽"], OK, {}),
    "newlines-only-text": (lambda: ["a\r\n\r\nb"], OK, {}),
    "one-mb-text": (lambda: [MB], OK, {}),
    "many-items": (lambda: [f"t{i}" for i in range(20_000)], OK, {}),
    # 20,000 items cost ~10 s per class on this server: the task clients every adapter calls
    # into take them ("many-items"); the adapters and the Ray stage take 2,000.
    "2000-items": (lambda: [f"t{i}" for i in range(2_000)], OK, {}),
    "duplicates": (lambda: ["same"] * 50, OK, {}),
    "str-subclass": (lambda: [type("S", (str,), {})("sub")], OK, {}),
}

#: LangChain converts a prompt or messages itself (``langchain_core``) before hfrag sees them: its
#: own ValueError or NotImplementedError, never an AttributeError.
LC_OWN = (ValueError, NotImplementedError)
#: LlamaIndex validates the messages in its own start event (a pydantic ValidationError, which is
#: a ValueError) before hfrag sees them.
LI_OWN = ValueError
LC_GEN = {"lc.ChatHuggingFaceInference": LC_OWN, "lc.HuggingFaceInferenceLLM": LC_OWN}
#: Chat servers take an empty message; only a prompt for plain generation must have text.
EMPTY_CHAT_OK = {
    "ChatClient": OK,
    "lc.ChatHuggingFaceInference": OK,
    "li.HuggingFaceInferenceLLM": OK,
}
#: Messages handed to a class that takes a prompt (plain generation): refused as not a string.
NOT_A_PROMPT = {"TextGenerationClient": TypeError}

#: Neither a prompt nor messages: hfrag's TypeError, or the framework's own check first.
NOT_MESSAGES = {**LC_GEN, "li.HuggingFaceInferenceLLM": LI_OWN}
#: Messages as dicts: plain generation takes a prompt, the LlamaIndex LLM takes ChatMessage.
DICTS_REFUSED = {**NOT_A_PROMPT, "li.HuggingFaceInferenceLLM": TypeError}


def _user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


PROMPTS: dict[str, tuple[Any, Any, dict[str, Any]]] = {
    "empty-prompt": (lambda: "", InputError, EMPTY_CHAT_OK),
    "whitespace-prompt": (lambda: " \n\t", InputError, EMPTY_CHAT_OK),
    "none-prompt": (lambda: None, TypeError, {**LC_GEN, "li.HuggingFaceInferenceLLM": LI_OWN}),
    "bytes-prompt": (lambda: b"hello", TypeError, {**LC_GEN, "li.HuggingFaceInferenceLLM": LI_OWN}),
    "int-prompt": (lambda: 42, TypeError, {**LC_GEN, "li.HuggingFaceInferenceLLM": LI_OWN}),
    "list-of-ints": (lambda: [1, 2], TypeError, {**LC_GEN, "li.HuggingFaceInferenceLLM": LI_OWN}),
    "surrogate-prompt": (lambda: "hi \udcff", InputError, {}),
    "message-without-role": (
        lambda: [{"content": "hi"}],
        InputError,
        {**LC_GEN, **NOT_A_PROMPT, "li.HuggingFaceInferenceLLM": TypeError},
    ),
    "message-bad-role": (
        lambda: [{"role": "robot", "content": "hi"}],
        InputError,
        {**LC_GEN, **NOT_A_PROMPT, "li.HuggingFaceInferenceLLM": LI_OWN},
    ),
    "message-none-content": (
        lambda: [{"role": "user", "content": None}],
        InputError,
        # LangChain reads a None content as an empty message (chat servers take it).
        {
            **LC_GEN,
            **NOT_A_PROMPT,
            **{k: OK for k in LC_GEN},
            "li.HuggingFaceInferenceLLM": TypeError,
        },
    ),
    "messages-dict": (
        lambda: {"role": "user", "content": "hi"},
        TypeError,
        {**LC_GEN, "li.HuggingFaceInferenceLLM": LI_OWN},
    ),
    "control-chars-prompt": (lambda: "Say \x00hi\x07.", OK, {}),
    "long-prompt": (lambda: "Paris is the capital of France. " * 500, OK, {}),
    # Not a prompt nor messages: each class's own TypeError, or its framework's ValueError.
    "set-prompt": (lambda: {"hi"}, TypeError, NOT_MESSAGES),
    "float-prompt": (lambda: 1.5, TypeError, NOT_MESSAGES),
    "nan-prompt": (lambda: math.nan, TypeError, NOT_MESSAGES),
    "bool-prompt": (lambda: True, TypeError, NOT_MESSAGES),
    "numpy-str-array-prompt": (lambda: np.array(["hi"]), TypeError, NOT_MESSAGES),
    "nested-message-lists": (lambda: [[_user("hi")]], TypeError, NOT_MESSAGES),
    "none-among-messages": (lambda: [_user("hi"), None], TypeError, NOT_MESSAGES),
    "generator-of-messages": (
        lambda: (m for m in [_user("hi")]),
        TypeError,
        {**LC_GEN, "li.HuggingFaceInferenceLLM": InputError},
    ),
    # Strings in all their forms: sent as they are.
    "numpy-str-scalar-prompt": (lambda: np.str_("Say hello."), OK, {}),
    "str-subclass-prompt": (lambda: type("S", (str,), {})("Say hello."), OK, {}),
    "bidi-and-zero-width-prompt": (lambda: "\u202eSay hello\u200b", OK, {}),
    "emoji-and-cjk-prompt": (lambda: "🙂 汉字 ﷽ say hi", OK, {}),
    "crlf-prompt": (lambda: "Say\r\n\r\nhello", OK, {}),
    "header-injection-prompt": (lambda: "hi\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1", OK, {}),
    "control-chars-only-prompt": (lambda: "\x00\x01\x02", OK, {}),
    "high-surrogate-only-prompt": (lambda: "\ud800", InputError, {}),
    # Past the model's input limit: the server's 4xx, raised, not retried.
    "one-mb-prompt": (lambda: MB, InvalidRequestError, {}),
    "20000-messages": (
        lambda: [_user(f"m{i}") for i in range(20_000)],
        InvalidRequestError,
        {**NOT_A_PROMPT, "li.HuggingFaceInferenceLLM": TypeError},
    ),
    # LangChain reads each string as a user message (then the server refuses 20,000 of them).
    "20000-strings": (
        lambda: [f"m{i}" for i in range(20_000)],
        TypeError,
        {k: InvalidRequestError for k in LC_GEN} | {"li.HuggingFaceInferenceLLM": LI_OWN},
    ),
    # Messages: dicts are refused where LlamaIndex ChatMessage objects are due (TypeError).
    "tuple-of-messages": (lambda: (_user("Say hello."),), OK, DICTS_REFUSED),
    "empty-messages": (lambda: [], InputError, NOT_A_PROMPT),
    "role-none": (
        lambda: [{"role": None, "content": "hi"}],
        InputError,
        {**NOT_A_PROMPT, **LC_GEN, "li.HuggingFaceInferenceLLM": LI_OWN},
    ),
    "surrogate-content": (lambda: [_user("bad \udcff")], InputError, DICTS_REFUSED),
    # LangChain's message model decodes bytes content to text.
    "bytes-content": (
        lambda: [_user(b"Say hello.")],
        InputError,
        {**DICTS_REFUSED, **{k: OK for k in LC_GEN}},
    ),
    "int-content": (lambda: [_user(5)], InputError, {**DICTS_REFUSED, **LC_GEN}),
    "content-parts": (
        lambda: [_user([{"type": "text", "text": "Say hello."}])],
        OK,
        {**NOT_A_PROMPT, "li.HuggingFaceInferenceLLM": LI_OWN},
    ),
    "system-only": (lambda: [{"role": "system", "content": "Be brief."}], OK, DICTS_REFUSED),
    "assistant-last": (
        lambda: [_user("hi"), {"role": "assistant", "content": "hello"}],
        OK,
        DICTS_REFUSED,
    ),
    "mapping-proxy-message": (
        lambda: [types.MappingProxyType(_user("Say hello."))],
        OK,
        {**DICTS_REFUSED, **LC_GEN},
    ),
}


def _expected(table: dict[str, Any], case: str, subject: Subject) -> Any:
    _, outcome, overrides = table[case]
    return overrides.get(subject.name, overrides.get(subject.kind, outcome))


def _length(value: Any) -> int:
    return len(value) if not isinstance(value, (str, bytes)) else 1


def _check_result(subject: Subject, given: Any, result: Any) -> None:
    n = len(list(given)) if not isinstance(given, str) else 1
    if subject.kind == "embed":
        assert _length(result) == n
        if n:
            assert np.isfinite(np.asarray(result, dtype=np.float32)).all()
    elif subject.name in ("RerankClient", "lc.HuggingFaceInferenceCrossEncoder"):
        assert _length(result) == n  # one score per document
    elif subject.kind == "rerank":
        assert _length(result) <= n  # the best top_n documents, empty ones left out
    else:
        assert isinstance(result, str)
        assert result.strip()


def _run(server: ServerHandle, subject: Subject, table: dict[str, Any], case: str) -> None:
    factory = table[case][0]
    expected = _expected(table, case, subject)
    obj = subject.build(server.url, max_retries=0)
    try:
        if expected == OK:
            _check_result(subject, factory(), subject.call(obj, factory()))
            return
        with pytest.raises(Exception) as info:
            subject.call(obj, factory())
        error = info.value
        assert not isinstance(error, (KeyError, IndexError, AttributeError)), repr(error)
        assert isinstance(error, expected), f"{type(error).__name__}: {error}"
        if isinstance(error, (InputError, TypeError)) and not isinstance(error, HfragError):
            assert str(error)  # says what is wrong
        if not isinstance(error, InferenceError):
            assert server.counters.bodies == [], "an input refused by the client was sent"
    finally:
        close(obj)


TEXT_SUBJECTS = [s for s in SUBJECTS if s.kind != "generate"]
GEN_SUBJECTS = [s for s in SUBJECTS if s.kind == "generate"]


TASK_CLIENTS = ("EmbeddingsClient", "RerankClient")
TEXT_CASES = [
    (subject, case)
    for subject in TEXT_SUBJECTS
    for case in TEXTS
    if case != "many-items" or subject.name in TASK_CLIENTS
]


@pytest.mark.parametrize(("subject", "case"), TEXT_CASES, ids=[f"{s}-{c}" for s, c in TEXT_CASES])
def test_bad_texts(server: ServerHandle, subject: Subject, case: str) -> None:
    _run(server, subject, TEXTS, case)


@pytest.mark.parametrize("case", list(PROMPTS))
@pytest.mark.parametrize("subject", GEN_SUBJECTS, ids=str)
def test_bad_prompts(server: ServerHandle, subject: Subject, case: str) -> None:
    _run(server, subject, PROMPTS, case)


def test_the_catalogue_is_large_enough() -> None:
    assert len(TEXTS) >= 30
    assert len(PROMPTS) >= 30
    for subject in SUBJECTS:
        assert len(cases_for(subject)) >= 30, subject


def cases_for(subject: Subject) -> list[str]:
    """The bad inputs this module gives ``subject``."""
    if subject.kind == "generate":
        return list(PROMPTS)
    return [case for s, case in TEXT_CASES if s is subject]
