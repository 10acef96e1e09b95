"""Progress: one bar per job of more than one batch, never stacked; a callback for other UIs."""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

import pytest

from hfrag.server.testing import ServerHandle
from hfrag.tasks import EmbeddingOptions, EmbeddingsClient
from hfrag.tasks.progress import progress_bar

TEXTS = [f"text number {i}" for i in range(40)]


def client(url: str, **options: Any) -> EmbeddingsClient:
    return EmbeddingsClient(endpoint_url=url, options=EmbeddingOptions(**options))


def finished_bars(err: str) -> int:
    """How many bars tqdm drew: each starts at ``0/N``."""
    return len(re.findall(r"\| 0/\d+ \[", err))


def test_one_bar_for_a_job_of_several_batches(
    server: ServerHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    client(server.url, show_progress=True, batch_size=10).embed(TEXTS)
    err = capsys.readouterr().err
    assert "40/40" in err
    assert finished_bars(err) == 1


def test_no_bar_for_a_single_batch(
    server: ServerHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    client(server.url, show_progress=True, batch_size=64).embed(TEXTS)
    client(server.url, show_progress=True).embed_query("one question")
    assert "it/s" not in capsys.readouterr().err
    assert "/40" not in capsys.readouterr().err


def test_concurrent_jobs_never_stack_bars(
    server: ServerHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    emb = client(server.url, show_progress=True, batch_size=4, max_concurrency=1)

    async def many() -> None:
        await asyncio.gather(*(emb.aembed(TEXTS) for _ in range(4)))

    asyncio.run(many())
    err = capsys.readouterr().err
    # The four jobs start together; the first one's bar holds the screen for its ten requests,
    # so the other three run without a bar (stacked bars would show four).
    assert finished_bars(err) == 1
    assert "40/40" in err


def test_progress_callback_sees_every_batch(server: ServerHandle) -> None:
    seen: list[tuple[int, int]] = []
    client(
        server.url, batch_size=10, progress=lambda done, total: seen.append((done, total))
    ).embed(TEXTS)
    assert [total for _, total in seen] == [40] * 4
    assert sorted(done for done, _ in seen) == [10, 20, 30, 40]


def test_progress_callback_is_called_for_a_single_batch_too(server: ServerHandle) -> None:
    seen: list[tuple[int, int]] = []
    client(server.url, progress=lambda d, t: seen.append((d, t))).embed(["a", "b"])
    assert seen == [(2, 2)]


def test_the_screen_is_released_after_a_failed_job(server: ServerHandle) -> None:
    from hfrag.server.testing import CannedResponse

    server.script("/", CannedResponse(400, {"error": "no"}))
    emb = client(server.url, show_progress=True, batch_size=10, max_concurrency=1)
    with pytest.raises(Exception, match="no"):
        emb.embed(TEXTS)
    acquired = threading.Event()
    with progress_bar(10, True, "next", batches=2) as advance:
        advance(10)
        acquired.set()
    assert acquired.is_set()


def test_adapter_fields_carry_the_callback(server: ServerHandle) -> None:
    pytest.importorskip("langchain_core")
    from hfrag.langchain import HuggingFaceInferenceEmbeddings

    seen: list[int] = []
    emb = HuggingFaceInferenceEmbeddings(
        endpoint_url=server.url, batch_size=10, progress=lambda done, _total: seen.append(done)
    )
    emb.embed_documents(TEXTS)
    assert sorted(seen) == [10, 20, 30, 40]
    assert "progress" not in emb.model_dump()
