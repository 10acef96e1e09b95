"""The test harness: run the server in a background thread and steer it from a test.

Example::

    from hfrag.server.testing import CannedResponse, serve_in_thread
    from hfrag.server import FaultConfig

    with serve_in_thread() as srv:                     # default ServerConfig()
        srv.script("/embed", CannedResponse(503, {"error": "loading", "estimated_time": 0.1}))
        srv.set_faults(FaultConfig(p_rate_limit=0.5, retry_after=0.01, seed=1), route="/embed")
        httpx.post(f"{srv.url}/embed", json={"inputs": ["a"]})
        assert srv.counters.total("/embed", 503) == 1

The server listens on 127.0.0.1 at a free port, with its own event loop in a daemon thread;
leaving the ``with`` block stops it and joins the thread.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web

from hfrag.server.app import build_app
from hfrag.server.config import ServerConfig
from hfrag.server.deployments import Deployment, deployment_configs
from hfrag.server.faults import FaultConfig
from hfrag.server.runtime import ModelRuntime
from hfrag.server.state import CannedResponse, Counters, ServerState

__all__ = [
    "CannedResponse",
    "Counters",
    "DeploymentsHandle",
    "Listener",
    "ServerHandle",
    "serve_deployments",
    "serve_in_subprocess",
    "serve_in_thread",
]


class ServerHandle:
    """A server running in a background thread.

    Attributes:
        url: ``http://127.0.0.1:PORT``.
        config: the ``ServerConfig`` it serves.
        counters: what it saw (see ``Counters``).
        models: its model threads and embedding batcher (``batches`` lists batch sizes).
    """

    def __init__(
        self, config: ServerConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or ServerConfig()
        self._state = ServerState(self.config)
        self.counters: Counters = self._state.counters
        self.models: ModelRuntime = self._state.models
        self._host = host
        self._requested_port = port
        self.port = 0
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runners: list[web.AppRunner] = []
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- steering -------------------------------------------------------------------------------

    def set_faults(self, faults: FaultConfig | None, route: str | None = None) -> None:
        """Install ``faults`` for the exact request path ``route``, or for all routes (None).

        Restarts that config's cold-start clock and random sequence. ``faults=None`` removes a
        route override (or clears the server-wide faults).
        """
        self._state.faults.set(faults, route)

    def script(self, route: str | None, *responses: CannedResponse) -> None:
        """Answer the next requests to ``route`` (None: any path) with ``responses``, in order.

        Scripted answers come before faults and normal handling; a path's own queue is used
        before the any-path queue.
        """
        self._state.scripts.add(route, responses)

    def reset(self) -> None:
        """Clear counters and scripts; faults go back to those the server was started with."""
        self._state.counters.reset()
        self._state.scripts.clear()
        self._state.faults.reset()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> ServerHandle:
        """Start the server thread and wait until it accepts connections."""
        self._thread = threading.Thread(target=self._run, name="hfrag-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("hfrag server did not start within 30 s")
        if self._error is not None:
            raise RuntimeError(f"hfrag server failed to start: {self._error}") from self._error
        return self

    def stop(self) -> None:
        """Stop the server and join its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        self._loop = None
        self._thread = None

    def __enter__(self) -> ServerHandle:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_site())
        except BaseException as exc:  # report any start-up failure to start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            for runner in self._runners:
                loop.run_until_complete(runner.cleanup())
            # Handlers still stalled or streaming end here, not as "Task was destroyed" noise.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _start_site(self) -> None:
        self.port = await self._listen(build_app(state=self._state), self._requested_port)
        self.url = f"http://{self._host}:{self.port}"

    async def _listen(self, app: web.Application, port: int) -> int:
        """Serve ``app`` on ``port`` of the handle's host (0: a free one); the bound port."""
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.25)
        await runner.setup()
        self._runners.append(runner)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, port))
        site = web.SockSite(runner, sock, backlog=1024)
        await site.start()
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Listener:
    """One listener of ``serve_deployments``: what it stands for, where, and its live state."""

    deployment: Deployment
    url: str
    config: ServerConfig
    counters: Counters


class DeploymentsHandle(ServerHandle):
    """The listeners of ``hfrag serve``'s layout (see ``deployments``) in one background thread.

    Attributes:
        listeners: by deployment name (``embed``, ``rerank``, ``generate``, ``router``).
        urls: the same, name to URL; ``url`` is the router listener's (every route).
    """

    def __init__(
        self, config: ServerConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(config, host=host, port=port)
        self.listeners: dict[str, Listener] = {}
        self.urls: dict[str, str] = {}

    async def _start_site(self) -> None:
        shared = self._state.models
        for deployment, config in deployment_configs(self.config):
            state = self._state if deployment.kind is None else ServerState(config, shared)
            wanted = self._requested_port + deployment.offset if self._requested_port else 0
            port = await self._listen(build_app(state=state, layout=deployment.layout), wanted)
            url = f"http://{self._host}:{port}"
            self.listeners[deployment.name] = Listener(deployment, url, config, state.counters)
            self.urls[deployment.name] = url
        self.url = self.urls["router"]
        self.port = int(self.url.rsplit(":", 1)[1])


@contextmanager
def serve_deployments(
    config: ServerConfig | None = None, *, port: int = 0
) -> Iterator[DeploymentsHandle]:
    """Run ``hfrag serve``'s layout for ``config`` for the ``with`` block: one listener per
    deployment (TEI embeddings, TEI re-ranker, TGI with chat, router layout), each with its own
    ``/info``; ``port`` is the base port (0: free ports).

    Example::

        from hfrag.server import ServerConfig
        from hfrag.server.models_real import real_models

        with serve_deployments(ServerConfig(models=real_models())) as srv:
            srv.urls["rerank"]  # also "embed", "generate" and "router"
    """
    handle = DeploymentsHandle(config, port=port)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


@contextmanager
def serve_in_thread(config: ServerConfig | None = None) -> Iterator[ServerHandle]:
    """Run a server for ``config`` (default ``ServerConfig()``) for the ``with`` block."""
    handle = ServerHandle(config)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


@contextmanager
def serve_in_subprocess(*args: str, startup_timeout: float = 120.0) -> Iterator[str]:
    """Run ``hfrag serve --port 0 *args`` in a child process for the ``with`` block; yields its URL.

    For measuring a client alone (the server's CPU is not counted in this process's
    ``time.process_time()``). The child's output is read all along (a full pipe would stall it);
    it is terminated, then killed if it lingers, on the way out.
    """
    cmd = [sys.executable, "-m", "hfrag", "serve", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timer = threading.Timer(startup_timeout, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        for line in proc.stdout:  # the model list comes first, then "ready on <url>"
            seen.append(line)
            if "ready on" in line:
                break
        else:
            raise RuntimeError("hfrag serve exited before it was ready:\n" + "".join(seen[-20:]))
        timer.cancel()
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
        yield next(word for word in line.split() if word.startswith("http://")).rstrip("/")
    finally:
        timer.cancel()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
