"""The clients of the bulk-embedding benchmark, and how one is measured in its own process.

Each runner is built from ``(url, texts, concurrency)`` and returns a zero-argument callable that
embeds every text and returns the vectors. ``measure`` builds one runner in a fresh process and
reports its wall time, CPU seconds, peak memory above the process's resident size before the call,
and how many vectors equal the hashing model's (``hfrag.server.HashingBackend``, deterministic).

The reference clients are used as their docs show. Three of them need no change to reach the
local server (an endpoint URL); the two that only take a Hub model id (langchain-huggingface's
``HuggingFaceEndpointEmbeddings``, llama-index's ``HuggingFaceInferenceAPIEmbedding``) reach it
through ``point_hub_at``: ``HF_ENDPOINT`` (huggingface_hub's own setting, for the provider look-up)
plus one assignment, ``huggingface_hub.constants.INFERENCE_PROXY_TEMPLATE``, the router's address.
Where a documented path fails on the workload, ``WORKAROUNDS`` has what a user would write next:
batches of 32 in 8 threads, each batch retried after 1 s on any error, through the same class.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

BATCH = 32
DIM = 384
MODEL_ID = "BAAI/bge-small-en-v1.5"  # served by _steered_server.py under the router layout
RETRY_PAUSE = 1.0
TRIES = 10

Runner = Callable[[], Any]
Factory = Callable[[str, list[str], int], Runner]


def corpus(n: int) -> list[str]:
    """The benchmark's texts: short passages, as many as asked."""
    return [f"passage {i}: the {i % 17} quick foxes jump over {i % 5} lazy dogs" for i in range(n)]


def point_hub_at(url: str) -> None:
    """Send huggingface_hub's router traffic to ``url`` (before it is imported)."""
    os.environ["HF_ENDPOINT"] = url
    import huggingface_hub.constants

    huggingface_hub.constants.INFERENCE_PROXY_TEMPLATE = url + "/{provider}"


# -- hfrag ---------------------------------------------------------------------------------------


def _client(url: str, concurrency: int) -> Any:
    from hfrag.tasks import EmbeddingOptions, EmbeddingsClient

    options = EmbeddingOptions(batch_size=BATCH, max_concurrency=concurrency)
    return EmbeddingsClient(endpoint_url=url, options=options)


def hfrag_sync(url: str, texts: list[str], concurrency: int) -> Runner:
    client = _client(url, concurrency)
    return lambda: client.embed(texts)


def hfrag_async(url: str, texts: list[str], concurrency: int) -> Runner:
    client = _client(url, concurrency)
    return lambda: asyncio.run(client.aembed(texts))


def hfrag_langchain(url: str, texts: list[str], concurrency: int) -> Runner:
    from hfrag.langchain import HuggingFaceInferenceEmbeddings

    lc = HuggingFaceInferenceEmbeddings(endpoint_url=url, max_concurrency=concurrency)
    return lambda: lc.embed_documents(texts)


def hfrag_llama_index(url: str, texts: list[str], concurrency: int) -> Runner:
    from hfrag.llama_index import HuggingFaceInferenceEmbedding

    li = HuggingFaceInferenceEmbedding(endpoint_url=url, max_concurrency=concurrency)
    return lambda: li.get_text_embedding_batch(texts)


# -- the bare pool -------------------------------------------------------------------------------


def bare_pool(url: str, texts: list[str], concurrency: int) -> Runner:
    """httpx.AsyncClient, ``concurrency`` requests in flight, batches of 32 to TEI ``/embed``,
    ``json.loads`` + ``np.asarray`` into one array: no retries, no checks."""
    import httpx

    chunks = [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]

    async def go() -> np.ndarray:
        limits = httpx.Limits(max_connections=concurrency)
        out = np.empty((len(texts), DIM), dtype=np.float32)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            gate = asyncio.Semaphore(concurrency)

            async def one(i: int, chunk: list[str]) -> None:
                async with gate:
                    response = await client.post(url + "/embed", json={"inputs": chunk})
                    response.raise_for_status()
                    out[i * BATCH : i * BATCH + len(chunk)] = np.asarray(
                        json.loads(response.content), dtype=np.float32
                    )

            await asyncio.gather(*(one(i, c) for i, c in enumerate(chunks)))
        return out

    return lambda: asyncio.run(go())


# -- the reference clients, as documented ---------------------------------------------------------


def hub_client(url: str, texts: list[str], concurrency: int) -> Runner:
    from huggingface_hub import InferenceClient

    hub = InferenceClient(model=url)
    return lambda: hub.feature_extraction(texts)


def langchain_huggingface(url: str, texts: list[str], concurrency: int) -> Runner:
    point_hub_at(url)
    from langchain_huggingface import HuggingFaceEndpointEmbeddings

    lc = HuggingFaceEndpointEmbeddings(model=MODEL_ID)
    return lambda: lc.embed_documents(texts)


def llama_index_hf_api(url: str, texts: list[str], concurrency: int) -> Runner:
    point_hub_at(url)
    from llama_index.embeddings.huggingface_api import HuggingFaceInferenceAPIEmbedding

    li = HuggingFaceInferenceAPIEmbedding(model_name=MODEL_ID)
    return lambda: li.get_text_embedding_batch(texts)


def llama_index_tei(url: str, texts: list[str], concurrency: int) -> Runner:
    from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference

    li = TextEmbeddingsInference(model_name=MODEL_ID, base_url=url)
    return lambda: li.get_text_embedding_batch(texts)


# -- what a user writes when the documented path fails --------------------------------------------


def _retried(fn: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
    def call(chunk: list[str]) -> Any:
        for attempt in range(TRIES):
            try:
                return fn(chunk)
            except Exception:
                if attempt == TRIES - 1:
                    raise
                time.sleep(RETRY_PAUSE)
        raise AssertionError("unreachable")

    return call


def _threaded(fn: Callable[[list[str]], Any], texts: list[str], threads: int) -> Runner:
    chunks = [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]
    one = _retried(fn)

    def run() -> list[Any]:
        with ThreadPoolExecutor(threads) as pool:
            return [row for part in pool.map(one, chunks) for row in part]

    return run


def hub_workaround(url: str, texts: list[str], concurrency: int) -> Runner:
    from huggingface_hub import InferenceClient

    hub = InferenceClient(model=url)
    return _threaded(lambda chunk: hub.feature_extraction(chunk), texts, concurrency)


def langchain_huggingface_workaround(url: str, texts: list[str], concurrency: int) -> Runner:
    point_hub_at(url)
    from langchain_huggingface import HuggingFaceEndpointEmbeddings

    lc = HuggingFaceEndpointEmbeddings(model=MODEL_ID)
    return _threaded(lc.embed_documents, texts, concurrency)


def llama_index_tei_workaround(url: str, texts: list[str], concurrency: int) -> Runner:
    from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference

    li = TextEmbeddingsInference(model_name=MODEL_ID, base_url=url, embed_batch_size=BATCH)
    return _threaded(li.get_text_embedding_batch, texts, concurrency)


def llama_index_hf_api_workaround(url: str, texts: list[str], concurrency: int) -> Runner:
    """Its sync batch call runs each batch on a new event loop and fails on the second one; the
    async call on one loop works: batches of 32, ``concurrency`` at once, each retried."""
    point_hub_at(url)
    from llama_index.embeddings.huggingface_api import HuggingFaceInferenceAPIEmbedding

    li = HuggingFaceInferenceAPIEmbedding(model_name=MODEL_ID)
    chunks = [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]

    async def go() -> list[Any]:
        gate = asyncio.Semaphore(concurrency)

        async def one(chunk: list[str]) -> list[Any]:
            async with gate:
                for attempt in range(TRIES):
                    try:
                        return await li.aget_text_embedding_batch(chunk)
                    except Exception:
                        if attempt == TRIES - 1:
                            raise
                        await asyncio.sleep(RETRY_PAUSE)
            raise AssertionError("unreachable")

        parts = await asyncio.gather(*(one(c) for c in chunks))
        return [row for part in parts for row in part]

    return lambda: asyncio.run(go())


#: name -> factory, in the table's order.
RUNNERS: dict[str, Factory] = {
    "hfrag EmbeddingsClient.embed": hfrag_sync,
    "hfrag EmbeddingsClient.aembed": hfrag_async,
    "hfrag LangChain embed_documents": hfrag_langchain,
    "hfrag LlamaIndex get_text_embedding_batch": hfrag_llama_index,
    "huggingface_hub InferenceClient.feature_extraction": hub_client,
    "langchain-huggingface HuggingFaceEndpointEmbeddings": langchain_huggingface,
    "llama-index HuggingFaceInferenceAPIEmbedding": llama_index_hf_api,
    "llama-index TextEmbeddingsInference": llama_index_tei,
    "bare httpx pool (json.loads + np.asarray)": bare_pool,
}
HFRAG = [name for name in RUNNERS if name.startswith("hfrag")]
BARE = "bare httpx pool (json.loads + np.asarray)"
ANCHORS = [name for name in RUNNERS if name not in HFRAG and name != BARE]
#: a reference client's name -> (its workaround's row label, factory).
WORKAROUNDS: dict[str, tuple[str, Factory]] = {
    "huggingface_hub InferenceClient.feature_extraction": (
        "  workaround: 8 threads x 32 texts, retry after 1 s",
        hub_workaround,
    ),
    "langchain-huggingface HuggingFaceEndpointEmbeddings": (
        "  workaround: 8 threads x 32 texts, retry after 1 s",
        langchain_huggingface_workaround,
    ),
    "llama-index HuggingFaceInferenceAPIEmbedding": (
        "  workaround: async API, 8 x 32 texts, retry after 1 s",
        llama_index_hf_api_workaround,
    ),
    "llama-index TextEmbeddingsInference": (
        "  workaround: 8 threads x 32 texts, retry after 1 s",
        llama_index_tei_workaround,
    ),
}


def factory(name: str) -> Factory:
    """The runner factory called ``name`` (a workaround is named after its client)."""
    if name in RUNNERS:
        return RUNNERS[name]
    if name.startswith("workaround of "):
        return WORKAROUNDS[name.removeprefix("workaround of ")][1]
    raise KeyError(name)


# -- one measurement, in a child process -----------------------------------------------------------


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _outcome(exc: BaseException) -> str:
    status = getattr(exc, "status", None) or getattr(
        getattr(exc, "response", None), "status_code", None
    )
    text = " ".join(str(exc).split()).split(" For more information")[0]
    text = re.sub(r" for url:? '?[^' ]+'?", "", text)[:90]
    return (
        f"{type(exc).__name__}" + (f" {status}" if status else "") + (f": {text}" if text else "")
    )


def vectors_right(out: Any, texts: list[str]) -> int:
    """How many returned vectors equal the hashing model's for the same text, in place."""
    from hfrag.server import HashingBackend

    try:
        got = np.asarray(out, dtype=np.float32)
    except (ValueError, TypeError):
        return 0
    if got.ndim != 2 or got.shape[1] != DIM:
        return 0
    expected = HashingBackend(dim=DIM).embed(texts)
    n = min(len(got), len(expected))
    return int((np.abs(got[:n] - expected[:n]).max(axis=1) < 1e-4).sum())


def child(spec: dict[str, Any]) -> None:
    """Build one runner, say ``ready``, wait for ``go`` on stdin, run it, print a JSON result."""
    texts = corpus(spec["texts"])
    run = factory(spec["runner"])(spec["url"], texts, spec["concurrency"])
    base = _rss_mib()
    print("ready", flush=True)
    sys.stdin.readline()
    out: Any = None
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        out = run()
        outcome = "ok"
    except BaseException as exc:
        outcome = "FAILS: " + _outcome(exc)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    peak = _peak_mib()
    result = {
        "wall": wall,
        "cpu": cpu,
        "outcome": outcome,
        "base_mib": base,
        "peak_mib": peak,
        "out_mib": len(texts) * DIM * 4 / 2**20,
        "right": vectors_right(out, texts) if out is not None else 0,
    }
    print("result " + json.dumps(result), flush=True)
    os._exit(0)  # a client's stuck threads or loops must not keep the benchmark waiting
