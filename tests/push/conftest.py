"""Fixtures for push tests: a test CA and server certificate (``trustme``), a local HTTPS receiver whose answers
each test scripts, and a factory of background runners limited to the test's project (so they never touch
anything else on a shared Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from support import TLSFiles, eventually, make_tls

from broker.jobs.runner import BackgroundOptions, BackgroundRunner
from broker.store.queues import Store
from broker.store.subscriptions import SubscribeArgs, SubscriptionStore

#: Names the server certificate is valid for.
CERT_NAMES = ("localhost", "hooks.test", "127.0.0.1")


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls(tmp_path_factory.mktemp("tls"), CERT_NAMES)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, dict[str, str], bytes]
Responder = Callable[[Received], Awaitable[Reply]]


@dataclass
class Receiver:
    """A minimal HTTPS server: records every request, answers with ``respond`` (default 200), or with
    the next of ``statuses`` while there are any. One request per connection, unless ``keep_alive``;
    ``connections`` counts the connections accepted, :meth:`drop_connections` closes the open ones."""

    server_context: ssl.SSLContext
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    respond: Responder | None = None
    port: int = 0
    in_progress: int = 0
    max_in_progress: int = 0
    keep_alive: bool = False
    connections: int = 0
    _open: set[asyncio.StreamWriter] = field(default_factory=set)
    _server: asyncio.Server | None = None

    def drop_connections(self) -> None:
        for writer in list(self._open):
            writer.close()

    def url(self, path: str = "/hook", host: str = "localhost") -> str:
        return f"https://{host}:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.server_context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    async def wait_for(self, count: int, timeout: float = 5.0, path: str | None = None) -> list[Received]:
        """Wait until ``count`` requests (to ``path``, if given) arrived; returns them."""

        def arrived() -> list[Received] | None:
            got = [r for r in self.requests if path is None or r.path == path]
            return got if len(got) >= count else None

        found: list[Received] = await eventually(arrived, timeout, interval=0.01,
                                                 what=lambda: f"{count} requests (got {self.paths()})")
        return found

    async def _answer(self, request: Received) -> Reply:
        if self.statuses:
            return self.statuses.pop(0), {}, b"scripted"
        if self.respond is not None:
            return await self.respond(request)
        return 200, {}, b"ok"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._open.add(writer)
        try:
            while await self._one(reader, writer) and self.keep_alive:
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError, ValueError):
            pass
        finally:
            self._open.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and answer it; False when the connection ended first."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        request = Received(method, path, headers, body)
        self.requests.append(request)
        self.in_progress += 1
        self.max_in_progress = max(self.max_in_progress, self.in_progress)
        try:
            status, extra, content = await self._answer(request)
        finally:
            self.in_progress -= 1
        head_out = [f"HTTP/1.1 {status} X", f"content-length: {len(content)}"]
        if not self.keep_alive:
            head_out.append("connection: close")
        head_out += [f"{k}: {v}" for k, v in extra.items()]
        writer.write(("\r\n".join(head_out) + "\r\n\r\n").encode("latin-1") + content)
        await writer.drain()
        return True


@pytest.fixture
async def receiver(tls_files: TLSFiles) -> AsyncIterator[Receiver]:
    r = Receiver(tls_files.server_context())
    await r.start()
    yield r
    await r.close()


@pytest.fixture
def subs(store: Store) -> SubscriptionStore:
    return SubscriptionStore(store)


FAST = BackgroundOptions(maintenance=False, push_refresh_s=0.05, push_poll_s=0.05, stop_grace_s=1.0)


@pytest.fixture
async def start_runner(
    store: Store, project: str, tls_files: TLSFiles
) -> AsyncIterator[Callable[..., Awaitable[BackgroundRunner]]]:
    """Start a push runner limited to the test's project (fast polling, trusting the test CA)."""
    runners: list[BackgroundRunner] = []

    async def start(*, allow_private: bool = True, resolver: Any = None, tracing: Any = None,
                    **options: Any) -> BackgroundRunner:
        opts = BackgroundOptions(**{**FAST.__dict__, "projects": (project,), **options})
        runner = BackgroundRunner(
            store, options=opts, allow_private=allow_private, ssl_context=tls_files.client_context(), resolver=resolver,
            tracing=tracing,
        )
        await runner.start()
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        await runner.stop()


def sub_args(url: str, **kw: Any) -> SubscribeArgs:
    """Subscription settings for direct SubscriptionStore calls (bypassing the route's URL check)."""
    values: dict[str, Any] = {"secret": None, "max_retries": None, "visibility_s": 30, "dead_letter_queue": None,
                              "max_concurrency": 10}
    values.update(kw)
    return SubscribeArgs(url=url, **values)


@pytest.fixture
def make_sub() -> Callable[..., SubscribeArgs]:
    return sub_args

