"""``hfrag demo`` (what ``make demo`` runs): the whole RAG pipeline, offline, in both frameworks."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from typing import Any

import pytest

from hfrag.cli import build_parser, main
from hfrag.demo import load_corpus, run


class Recorder:
    """A text stream that keeps every write apart (a streamed answer is many writes)."""

    def __init__(self, interrupt_at: str | None = None, exc: type[BaseException] = RuntimeError):
        self.writes: list[str] = []
        self.interrupt_at = interrupt_at
        self.exc = exc

    def write(self, text: str) -> int:
        if self.interrupt_at is not None and self.interrupt_at in text:
            raise self.exc("stopped by the test")
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    @property
    def text(self) -> str:
        return "".join(self.writes)


def _args(*argv: str) -> Any:
    return build_parser().parse_args(["demo", *argv])


def _server_url(text: str) -> str:
    found = re.search(r"local server at (http://127\.0\.0\.1:\d+)", text)
    assert found, text
    return found.group(1)


def _assert_stopped(url: str) -> None:
    assert not [t for t in threading.enumerate() if t.name == "hfrag-server"]
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def _section(text: str, title: str) -> list[str]:
    """The indented lines under the heading that starts with ``title``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    out = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        out.append(line)
    return out


def test_corpus_ships_with_the_package_and_its_licence() -> None:
    corpus = load_corpus()
    assert 20 <= len(corpus) <= 40
    assert len({c["id"] for c in corpus}) == len(corpus)
    assert all(c["text"].strip() for c in corpus)
    from importlib.resources import files

    notice = (files("hfrag") / "data" / "NOTICE.md").read_text(encoding="utf-8")
    assert "Apache License, Version 2.0" in notice


@pytest.mark.parametrize("framework", ["langchain", "llama-index"])
def test_demo_runs_the_whole_pipeline_on_the_hash_models(framework: str) -> None:
    out = Recorder()
    answer = run(_args("--models", "hash", "--framework", framework, "-k", "4"), out)
    text = out.text

    assert "hashing models" in text
    assert f"{framework} pipeline on hfrag's local server" in text
    retrieved = _section(text, "2. retrieved")
    assert len(retrieved) == 4
    assert all(re.match(r"^\s+-?\d+\.\d{3}\s+\[\w+\] ", line) for line in retrieved)
    assert "[bees]" in retrieved[0]  # the passage that answers the question comes first
    reranked = _section(text, "3. reranked")
    assert len(reranked) == 3  # --top-n
    scores = [float(line.split()[0]) for line in reranked]
    assert scores == sorted(scores, reverse=True)
    ids = {line.split()[1] for line in retrieved}
    assert {line.split()[1] for line in reranked} <= ids

    # The answer arrived in several writes (streamed), and is what run() returns.
    assert answer.strip()
    start = next(i for i, w in enumerate(out.writes) if w.startswith("\n4. answer"))
    tokens = []
    for w in out.writes[start + 1 :]:
        if w == "\n":
            break
        tokens.append(w)
    assert len(tokens) > 1
    assert "".join(tokens) == answer
    assert "timings:" in text
    assert re.search(r"total\s+\d+\.\d\d s", text)
    assert "local server stopped" in text
    _assert_stopped(_server_url(text))


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_the_server_stops_on_ctrl_c_or_an_error_mid_pipeline(exc: type[BaseException]) -> None:
    out = Recorder(interrupt_at="3. reranked", exc=exc)
    with pytest.raises(exc):
        run(_args("--models", "hash"), out)
    _assert_stopped(_server_url(out.text))


def test_ctrl_c_ends_the_command_with_130_and_a_short_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdout", Recorder(interrupt_at="4. answer", exc=KeyboardInterrupt))
    assert main(["demo", "--models", "hash"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not [t for t in threading.enumerate() if t.name == "hfrag-server"]


def _env_without_token() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}


def test_hosted_without_a_token_fails_clearly() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hfrag", "demo", "--hosted"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env_without_token(),
        check=False,
    )
    assert done.returncode == 2
    assert "HF_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr
    assert "local server" not in done.stdout  # nothing was started


def test_demo_command_runs_offline_without_a_token() -> None:
    """``make demo``'s command, as a process: exit 0, no token needed, server gone after."""
    done = subprocess.run(
        [sys.executable, "-m", "hfrag", "demo", "--models", "hash", "--framework", "llama-index"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env_without_token(),
        check=True,
    )
    assert "4. answer" in done.stdout
    assert "timings:" in done.stdout
    assert "100%" in done.stderr  # the embedding progress bar


def _real_models_missing() -> list[str]:
    try:
        from hfrag.server.models_real import missing_runtimes
    except ImportError:
        return ["hfrag.server.models_real"]
    return missing_runtimes()


@pytest.mark.slow
@pytest.mark.skipif(bool(_real_models_missing()), reason="the local extra's models are missing")
@pytest.mark.parametrize("framework", ["langchain", "llama-index"])
def test_demo_on_the_real_models_answers_with_the_generator(framework: str) -> None:
    from hfrag.server.models_real import EMBED_MODEL, GENERATE_MODEL

    out = Recorder()
    argv = ("--models", "real", "--max-new-tokens", "48", "--framework", framework)
    answer = run(_args(*argv), out)
    text = out.text
    assert "models: real" in text
    assert f"embedding 30 passages with {EMBED_MODEL}" in text
    assert f"answer from {GENERATE_MODEL}" in text
    assert "[bees]" in _section(text, "2. retrieved")[0]
    assert re.search(r"[A-Za-z]{3,}", answer)
    # Generated, not a passage copied out as the hashing generator does.
    assert answer.strip() not in {c["text"] for c in load_corpus()}
    _assert_stopped(_server_url(text))


@pytest.mark.parametrize("argv", [["-k", "0"], ["--top-n", "-1"], ["--framework", "haystack"]])
def test_bad_options_are_rejected_before_anything_starts(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["demo", *argv])
    assert info.value.code == 2


def test_a_blank_question_is_an_error_message_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--models", "hash", "--question", "   "]) == 1
    err = capsys.readouterr().err
    assert "hfrag demo failed" in err
    assert "Traceback" not in err
    assert not [t for t in threading.enumerate() if t.name == "hfrag-server"]


def test_hosted_runs_the_same_pipeline_on_the_router_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--hosted`` against a stand-in router (hfrag's server serving the hosted model ids)."""
    from hfrag.demo import HOSTED_EMBED, HOSTED_LLM, HOSTED_RERANK
    from hfrag.server import HashingBackend, ModelSpec, ServerConfig
    from hfrag.server.testing import serve_in_thread

    backend = HashingBackend()
    config = ServerConfig(
        models=[
            ModelSpec(HOSTED_EMBED, "embed", backend),
            ModelSpec(HOSTED_RERANK, "rerank", backend),
            ModelSpec(HOSTED_LLM, "generate", backend, max_input_length=4096),
        ]
    )
    with serve_in_thread(config) as router:
        monkeypatch.setenv("HF_TOKEN", "hf_demo_test_token")
        monkeypatch.setenv("HFRAG_ROUTER_URL", router.url)
        out = Recorder()
        answer = run(_args("--hosted"), out)
        bodies = router.counters.bodies
    assert "pipeline on the Hugging Face router" in out.text
    assert "local server" not in out.text  # no server of the demo's own
    assert f"answer from {HOSTED_LLM}" in out.text
    assert "[bees]" in _section(out.text, "2. retrieved")[0]
    assert answer.strip()
    chat = [b for b in bodies if isinstance(b, dict) and "messages" in b]
    assert chat
    assert chat[0]["stream"] is True
    assert chat[0]["model"].startswith(HOSTED_LLM)
    assert "hf_demo_test_token" not in out.text


@pytest.mark.parametrize("framework", ["langchain", "llama-index"])
def test_the_answer_is_printed_while_the_model_is_still_generating(
    monkeypatch: pytest.MonkeyPatch, framework: str
) -> None:
    """The first answer token is written while the generator is held before its second token:
    a demo (or client) that collected the whole stream first would only print after the gate's
    timeout, which ``waited_out`` records."""
    from hfrag.demo import HOSTED_EMBED, HOSTED_LLM, HOSTED_RERANK
    from hfrag.server import HashingBackend, ModelSpec, ServerConfig
    from hfrag.server.testing import serve_in_thread
    from tests.gated import Gated

    backend = HashingBackend()
    gated = Gated(backend)
    config = ServerConfig(
        models=[
            ModelSpec(HOSTED_EMBED, "embed", backend),
            ModelSpec(HOSTED_RERANK, "rerank", backend),
            ModelSpec(HOSTED_LLM, "generate", gated, max_input_length=4096),
        ]
    )

    class Watcher(Recorder):
        """Notes the generator's state when the first answer token is written, then lets it go."""

        def __init__(self) -> None:
            super().__init__()
            self.answering = False
            self.held_at_first_token: bool | None = None

        def write(self, text: str) -> int:
            if text.startswith("\n4. answer"):
                self.answering = True
            elif self.answering and self.held_at_first_token is None and text.strip():
                self.held_at_first_token = gated.produced == 1 and not gated.release.is_set()
                gated.release.set()
            return super().write(text)

    with serve_in_thread(config) as router:
        monkeypatch.setenv("HF_TOKEN", "hf_demo_test_token")
        monkeypatch.setenv("HFRAG_ROUTER_URL", router.url)
        out = Watcher()
        answer = run(_args("--hosted", "--framework", framework), out)
    assert out.held_at_first_token is True
    assert not gated.waited_out
    assert answer.strip()


def test_labelled_questions_each_name_a_corpus_passage() -> None:
    from hfrag.demo_eval import load_questions

    questions = load_questions()
    ids = [c["id"] for c in load_corpus()]
    assert sorted(q["passage"] for q in questions) == sorted(ids)  # one question per passage
    assert all(q["question"].strip().endswith("?") for q in questions)


def test_hit_rate_counts_the_answer_among_the_first_n() -> None:
    from hfrag.demo_eval import hit_rate

    rankings = [["a", "b", "c"], ["b", "a", "c"], ["c", "b", "a"]]
    assert hit_rate(rankings, ["a", "a", "a"], 1) == pytest.approx(1 / 3)
    assert hit_rate(rankings, ["a", "a", "a"], 2) == pytest.approx(2 / 3)
    assert hit_rate(rankings, ["a", "a", "a"], 3) == 1.0
    with pytest.raises(ValueError, match="one ranking per answer"):
        hit_rate(rankings, ["a"], 1)


def _eval_rows(text: str) -> dict[str, tuple[float, float]]:
    rows = {}
    for line in text.splitlines():
        found = re.match(r"^(retrieval.*?)\s+(\d\.\d{3})\s+(\d\.\d{3})$", line)
        if found:
            rows[found.group(1)] = (float(found.group(2)), float(found.group(3)))
    return rows


@pytest.mark.parametrize("framework", ["langchain", "llama-index"])
def test_demo_eval_reports_hit_rates_of_both_stages(framework: str) -> None:
    out = Recorder()
    run(_args("--models", "hash", "--eval", "--framework", framework), out)
    rows = _eval_rows(out.text)
    assert list(rows) == [
        "retrieval (hfrag/hash-embed, top 5)",
        "retrieval + rerank (hfrag/hash-rerank)",
    ]
    assert all(0.0 < h1 <= h3 <= 1.0 for h1, h3 in rows.values())
    assert "30 labelled questions" in out.text
    assert "4. answer" not in out.text  # --eval measures, it does not answer
    _assert_stopped(_server_url(out.text))


@pytest.mark.slow
@pytest.mark.skipif(bool(_real_models_missing()), reason="the local extra's models are missing")
def test_demo_eval_on_the_real_models_names_the_reranker_for_what_it_is() -> None:
    out = Recorder()
    run(_args("--models", "real", "--eval"), out)
    rows = _eval_rows(out.text)
    retrieval = rows["retrieval (sentence-transformers/all-MiniLM-L6-v2, top 5)"]
    assert retrieval[0] >= 0.9  # MiniLM finds the answering passage first for most questions
    assert retrieval[1] >= retrieval[0]
    # embedding similarity of the same embeddings cannot reorder what they retrieved
    assert rows["retrieval + rerank (hfrag/minilm-cosine-rerank)"] == retrieval
    assert "not a cross-encoder" in out.text
