"""What hfrag's streaming costs on top of reading the same SSE stream with bare httpx.

One local server (in this process, as in the tests) streams chat completions
(``/v1/chat/completions``); every reader sends the same body and reads the same events:

- ``httpx (bare)``: ``httpx.Client.stream`` + ``iter_lines`` + ``json.loads`` per ``data:`` line:
  the limit, measured in the same run;
- ``httpx async (bare)``: the same with ``httpx.AsyncClient``;
- ``hfrag ChatClient`` / ``hfrag ChatClient async``: the task client's typed chunks;
- ``LlamaIndex stream_chat`` / ``astream_chat``: hfrag's LlamaIndex LLM (responses per delta);
- ``LangChain stream``: hfrag's LangChain chat model, when ``hfrag.langchain`` imports.

Two measurements, each the best of ``--repeats`` runs (readers take turns in each round):

- overhead: an answer of ``--tokens`` tokens with no delay between them; the table gives the
  wall time of the whole stream, microseconds per token, and the extra microseconds per token
  over bare httpx (the ratio column divides by bare httpx's time);
- time to first token (TTFT): a short answer with ``--latency`` seconds before the first token
  and ``--token-delay`` between tokens; TTFT should be the latency plus the reader's cost.

A third table compares reasoning streams with the plain one, all through ``hfrag ChatClient``
on the router layout, per token (text and reasoning deltas both count): a model that sends
``reasoning_content`` deltas, and one that inlines ``<think>...</think>`` in ``content`` (split
by hfrag as it streams). The ratio column divides by the plain stream's microseconds per token;
within 1.10 is the target. The stream's time is mostly the server's and the transport's, so the
table also gives the decoder alone (the same chunks fed to ``ChatStreamDecoder`` in memory),
which a loaded machine disturbs far less.

Run with ``python benchmarks/bench_stream.py`` (``--quick`` for a fast pass). Numbers are
machine-dependent; the server shares the process and CPU with the readers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from hfrag.server import FaultConfig, ServerConfig
from hfrag.server.config import ModelSpec, default_models
from hfrag.server.testing import serve_in_thread
from hfrag.tasks import ChatClient, ReasoningDelta, TextDelta

MODEL = "hfrag/extractive-gen"
SHORT_PROMPT = (
    "Berlin is the capital of Germany. Paris is the capital of France.\n"
    "Question: What is the capital of France?"
)

Reader = Callable[[list[dict[str, Any]]], tuple[float, float, int]]


def long_prompt(tokens: int) -> str:
    """A prompt whose extractive answer is one sentence of about ``tokens`` tokens."""
    words = " ".join(f"w{i}" for i in range(tokens - 3))
    return f"The tower is {words}.\nBananas are yellow.\nQuestion: what is the tower?"


def body(messages: list[dict[str, Any]]) -> dict[str, Any]:
    # What hfrag's chat client sends to an endpoint.
    return {
        "model": "tgi",
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


# -- readers ----------------------------------------------------------------------------------
# A reader is built once per server (its client and pool warm, as in an application) and then
# called per run; each call returns (seconds to the first text, seconds to the end, text pieces).

Result = tuple[float, float, int]


class Clock:
    """Times one stream: call :meth:`piece` for each piece of text."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first = 0.0
        self.pieces = 0

    def piece(self) -> None:
        self.pieces += 1
        if not self.first:
            self.first = time.perf_counter() - self.start

    def result(self) -> Result:
        return self.first, time.perf_counter() - self.start, self.pieces


def _bare_event(line: str, clock: Clock) -> bool:
    """Handle one SSE line; False at ``[DONE]``."""
    if not line.startswith("data:"):
        return True
    data = line[5:].strip()
    if data == "[DONE]":
        return False
    choices = json.loads(data).get("choices") or []
    if choices and choices[0].get("delta", {}).get("content"):
        clock.piece()
    return True


def bare_sync(url: str) -> Reader:
    client = httpx.Client(timeout=60)

    def read(messages: list[dict[str, Any]]) -> Result:
        clock = Clock()
        with client.stream("POST", url + "/v1/chat/completions", json=body(messages)) as r:
            for line in r.iter_lines():
                if not _bare_event(line, clock):
                    break
        return clock.result()

    return read


def bare_async(url: str) -> Reader:
    def read(messages: list[dict[str, Any]]) -> Result:
        async def go() -> Result:
            # A client per event loop (an httpx.AsyncClient is bound to its loop); its setup
            # is not timed, its new connection is.
            async with httpx.AsyncClient(timeout=60) as client:
                clock = Clock()
                chat = url + "/v1/chat/completions"
                async with client.stream("POST", chat, json=body(messages)) as r:
                    async for line in r.aiter_lines():
                        if not _bare_event(line, clock):
                            break
                return clock.result()

        return asyncio.run(go())

    return read


def hfrag_sync(url: str) -> Reader:
    client = ChatClient(endpoint_url=url)

    def read(messages: list[dict[str, Any]]) -> Result:
        clock = Clock()
        for chunk in client.stream_chat(messages):
            if isinstance(chunk, TextDelta):
                clock.piece()
        return clock.result()

    return read


def hfrag_async(url: str) -> Reader:
    client = ChatClient(endpoint_url=url)

    def read(messages: list[dict[str, Any]]) -> Result:
        async def go() -> Result:
            clock = Clock()
            async for chunk in client.astream_chat(messages):
                if isinstance(chunk, TextDelta):
                    clock.piece()
            return clock.result()

        return asyncio.run(go())

    return read


def llama_index_readers() -> dict[str, Callable[[str], Reader]]:
    try:
        from llama_index.core.base.llms.types import ChatMessage

        from hfrag.llama_index import HuggingFaceInferenceLLM
    except ImportError:
        return {}

    def chat(messages: list[dict[str, Any]]) -> list[Any]:
        return [ChatMessage(role=m["role"], content=m["content"]) for m in messages]

    def sync(url: str) -> Reader:
        llm = HuggingFaceInferenceLLM(endpoint_url=url + "/v1")

        def read(messages: list[dict[str, Any]]) -> Result:
            clock = Clock()
            for response in llm.stream_chat(chat(messages)):
                if response.delta:
                    clock.piece()
            return clock.result()

        return read

    def aio(url: str) -> Reader:
        llm = HuggingFaceInferenceLLM(endpoint_url=url + "/v1")

        def read(messages: list[dict[str, Any]]) -> Result:
            async def go() -> Result:
                clock = Clock()
                async for response in await llm.astream_chat(chat(messages)):
                    if response.delta:
                        clock.piece()
                return clock.result()

            return asyncio.run(go())

        return read

    return {"LlamaIndex stream_chat": sync, "LlamaIndex astream_chat": aio}


def langchain_readers() -> dict[str, Callable[[str], Reader]]:
    try:
        from hfrag.langchain import ChatHuggingFaceInference
    except ImportError:
        return {}

    def sync(url: str) -> Reader:
        model = ChatHuggingFaceInference(endpoint_url=url + "/v1")

        def read(messages: list[dict[str, Any]]) -> Result:
            clock = Clock()
            for chunk in model.stream([(m["role"], m["content"]) for m in messages]):
                if chunk.content:
                    clock.piece()
            return clock.result()

        return read

    return {"LangChain stream": sync}


#: Reasoning models of the local server (``hfrag.server.traits``): the id asks for the form.
REASONING_ROWS = {
    "plain": MODEL,
    "reasoning_content": "bench/reasoning-content-gen",
    "<think> split": "bench/think-gen",
}


def reasoning_reader(model: str) -> Callable[[str], Reader]:
    def build(url: str) -> Reader:
        client = ChatClient(model, router_url=url)

        def read(messages: list[dict[str, Any]]) -> Result:
            clock = Clock()
            for chunk in client.stream_chat(messages):
                if isinstance(chunk, (TextDelta, ReasoningDelta)):
                    clock.piece()
            return clock.result()

        return read

    return build


def decoder_chunks(form: str, tokens: int) -> list[dict[str, Any]]:
    """The chunks of a stream of ``tokens`` answer tokens after 14 reasoning tokens."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    thoughts = [f" w{i}" for i in range(14)]
    out = []
    if form == "reasoning_content":
        out = [chunk({"reasoning_content": t}) for t in thoughts]
    elif form == "<think> split":
        out = [chunk({"content": t}) for t in ["<think>", *thoughts, "</think>"]]
    out += [chunk({"role": "assistant", "content": f" t{i}"}) for i in range(tokens)]
    return [*out, chunk({}, "stop")]


def decoder_cost(form: str, tokens: int, repeats: int) -> float:
    """Best seconds per chunk of ``ChatStreamDecoder`` over :func:`decoder_chunks`."""
    from hfrag.tasks.chat_stream import ChatStreamDecoder

    chunks = decoder_chunks(form, tokens)
    best = float("inf")
    for _ in range(max(30, repeats * 10)):  # cheap: many runs, so the best is not a busy moment
        decoder = ChatStreamDecoder("http://127.0.0.1/v1/chat/completions")
        start = time.perf_counter()
        for payload in chunks:
            decoder.feed(payload)
        best = min(best, time.perf_counter() - start)
    return best / len(chunks)


def server_config() -> ServerConfig:
    """The default models (``MODEL`` first) and the reasoning models, on one generator."""
    models = default_models()
    generator = next(m for m in models if m.name == MODEL)
    extra = [
        ModelSpec(name, "generate", generator.backend, max_input_length=4096, max_total_tokens=8192)
        for name in REASONING_ROWS.values()
        if name != MODEL
    ]
    ordered = [generator, *extra, *(m for m in models if m is not generator)]
    return ServerConfig(models=ordered)


def readers() -> dict[str, Callable[[str], Reader]]:
    return {
        "httpx (bare)": bare_sync,
        "httpx async (bare)": bare_async,
        "hfrag ChatClient": hfrag_sync,
        "hfrag ChatClient async": hfrag_async,
        **llama_index_readers(),
        **langchain_readers(),
    }


def measure(
    built: dict[str, Reader], messages: list[dict[str, Any]], repeats: int
) -> dict[str, Result]:
    """Each reader's best (fastest) of ``repeats`` runs; the readers take turns in every round,
    so load from elsewhere on the machine falls on all of them alike."""
    runs: dict[str, list[Result]] = {name: [] for name in built}
    for read in built.values():
        read(messages)  # warm-up: imports, first connection
    for _ in range(repeats):
        for name, read in built.items():
            runs[name].append(read(messages))
    best = {}
    for name, results in runs.items():
        pieces = {r[2] for r in results}
        if len(pieces) != 1:
            raise SystemExit(f"{name} disagrees with itself on the token count: {pieces}")
        best[name] = (min(r[0] for r in results), min(r[1] for r in results), results[0][2])
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tokens",
        type=int,
        default=1000,
        help="answer length for overhead (the server caps it near 1024)",
    )
    parser.add_argument("--repeats", type=int, default=7, help="runs per reader (best kept)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds before token 1")
    parser.add_argument("--token-delay", type=float, default=0.01, help="seconds between tokens")
    parser.add_argument("--quick", action="store_true", help="500 tokens, 3 repeats")
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.repeats = 500, 3

    long_messages = [{"role": "user", "content": long_prompt(args.tokens)}]
    short_messages = [{"role": "user", "content": SHORT_PROMPT}]
    results: dict[str, tuple[float, int, float, float]] = {}
    with serve_in_thread(server_config()) as srv:
        thinking = {n: reasoning_reader(m)(srv.url) for n, m in REASONING_ROWS.items()}
        reasoning = measure(thinking, long_messages, args.repeats)
        built = {name: build(srv.url) for name, build in readers().items()}
        overhead = measure(built, long_messages, args.repeats)
        srv.set_faults(FaultConfig(latency=args.latency, token_delay=args.token_delay))
        ttfts = measure(built, short_messages, args.repeats)
        for name in built:
            _, total, pieces = overhead[name]
            ttft, last, _ = ttfts[name]
            results[name] = (total, pieces, ttft, last)

    bare_total, bare_pieces, bare_ttft, _ = results["httpx (bare)"]
    print(
        f"\nStream of {bare_pieces} tokens with no delay (overhead), and a 6-token answer with "
        f"{args.latency * 1000:.0f} ms before the first token and {args.token_delay * 1000:.0f} "
        f"ms between tokens (TTFT); best of {args.repeats} runs.\n"
    )
    header = (
        f"{'reader':<26}{'stream ms':>10}{'us/token':>10}{'+us/token':>11}{'x bare':>8}"
        f"{'TTFT ms':>9}{'+TTFT ms':>10}{'last ms':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, (total, pieces, ttft, last) in results.items():
        if pieces != bare_pieces:
            raise SystemExit(f"{name} read {pieces} tokens, bare httpx {bare_pieces}")
        per = total / pieces * 1e6
        extra = (total - bare_total) / pieces * 1e6
        print(
            f"{name:<26}{total * 1000:>10.1f}{per:>10.1f}{extra:>+11.1f}"
            f"{total / bare_total:>8.2f}{ttft * 1000:>9.1f}{(ttft - bare_ttft) * 1000:>+10.1f}"
            f"{last * 1000:>9.1f}"
        )

    print(
        "\nReasoning streams through hfrag ChatClient (router layout), per text or reasoning "
        f"delta; best of {args.repeats} runs.\n"
    )
    header = (
        f"{'stream':<26}{'deltas':>8}{'stream ms':>11}{'us/token':>10}{'x plain':>9}"
        f"{'decoder us/chunk':>18}{'x plain':>9}"
    )
    print(header)
    print("-" * len(header))
    plain = reasoning["plain"][1] / reasoning["plain"][2]
    decoded = {name: decoder_cost(name, args.tokens, args.repeats) for name in reasoning}
    for name, (_, total, pieces) in reasoning.items():
        per, dec = total / pieces, decoded[name]
        print(
            f"{name:<26}{pieces:>8}{total * 1000:>11.1f}{per * 1e6:>10.1f}{per / plain:>9.2f}"
            f"{dec * 1e6:>18.2f}{dec / decoded['plain']:>9.2f}"
        )


if __name__ == "__main__":
    main()
