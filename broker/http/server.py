"""The HTTP/1.1 connection protocols of ``broker serve``: uvicorn's (httptools, or h11 where httptools is not
installed), with the limits a server facing the network needs and uvicorn does not apply by itself
(docs/reliability.md, "Connections"):

- **Request head size** (``BROKER_MAX_HEADER_BYTES``): a request line and headers over the cap are answered
  ``431 HEADERS_TOO_LARGE`` in the contract's error shape, and the connection is closed. The bytes of a head
  are counted as they arrive, so an endless header costs at most the cap and one socket read.
- **Request head deadline** (``BROKER_HEADER_TIMEOUT_SECONDS``): a connection must complete a request head
  within the timeout of being opened, or of its previous response; otherwise it is closed without an answer
  (nothing was asked). Idle and trickling (slowloris) connections are therefore short-lived.
- **Open connections** (``BROKER_MAX_CONNECTIONS`` per process, lowered to what the process's descriptor
  limit allows): at the cap, a new connection makes room by closing the connection that has waited longest
  for a request head (an idle keep-alive or a slow client); when every open connection has a request in
  progress, the new one is answered ``503 UNAVAILABLE`` with ``Retry-After: 1`` and closed.

Pass the class to uvicorn by name (``http="broker.http.server:HttpToolsServer"``), so every worker process
imports it; each process reads the limits from its settings on its first connection.
"""

from __future__ import annotations

import asyncio
import http
import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import h11
import msgspec
from uvicorn.protocols.http.h11_impl import H11Protocol

from broker import errors
from broker.http.edge import new_request_id
from broker.schemas import ErrorBody, ErrorResponse
from broker.settings import Settings

try:
    import resource
except ImportError:  # pragma: no cover - not a Unix
    resource = None  # type: ignore[assignment]

try:
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - uvicorn without its standard extras
    httptools = None  # type: ignore[assignment]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

log = logging.getLogger("broker.http.server")
_encode = msgspec.json.Encoder().encode

#: Descriptors kept for everything but client connections (the listening socket, Redis, logs, the resolver).
RESERVED_DESCRIPTORS = 64
#: The method, version and line ends of a request head, roughly (added to the parsed parts to measure it).
HEAD_OVERHEAD = 24
#: The "connection limit reached" warning is logged at most this often per process.
CAP_WARNING_SECONDS = 60.0


def descriptor_limit() -> int | None:
    """The process's soft limit of open files, or None when unlimited or unknown."""
    if resource is None:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int
    header_timeout: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        """The limits of ``settings``; the connection cap is lowered to leave ``RESERVED_DESCRIPTORS`` of the
        process's descriptor limit free (a process out of descriptors cannot accept anyone)."""
        cap = settings.max_connections
        files = descriptor_limit()
        if files is not None and cap > files - RESERVED_DESCRIPTORS:
            lowered = max(1, files - RESERVED_DESCRIPTORS)
            log.warning(
                "BROKER_MAX_CONNECTIONS=%d lowered to %d: this process may open %d files (ulimit -n)",
                cap, lowered, files,
            )
            cap = lowered
        return cls(settings.max_header_bytes, float(settings.header_timeout_seconds), cap)


class Connections:
    """The connections of one server process: how many are open, and which wait for a request head (oldest
    first, so the one to close to make room is found at once)."""

    def __init__(self, limits: ConnectionLimits):
        self.limits = limits
        self.open = 0
        self.waiting: dict[ConnectionGuard, None] = {}
        self._warned_at = -CAP_WARNING_SECONDS

    def at_cap(self) -> None:
        now = time.monotonic()
        if now - self._warned_at >= CAP_WARNING_SECONDS:
            self._warned_at = now
            log.warning(
                "connection limit reached (%d open in this process, BROKER_MAX_CONNECTIONS): closing the "
                "connections that wait longest for a request, refusing new ones with 503 when all are busy",
                self.open,
            )


def raw_error(exc: errors.BrokerError, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole HTTP/1.1 response carrying ``exc`` in the contract's error shape, ending the connection."""
    rid = new_request_id()
    body = _encode(ErrorResponse(error=ErrorBody(code=exc.code, message=exc.message, request_id=rid)))
    phrase = http.HTTPStatus(exc.status).phrase
    lines = [f"HTTP/1.1 {exc.status} {phrase}".encode()]
    lines += [name + b": " + value for name, value in default_headers]
    lines += [b"content-type: application/json", b"content-length: %d" % len(body), b"x-request-id: " + rid.encode()]
    lines += [f"{name.lower()}: {value}".encode("latin-1") for name, value in exc.headers.items()]
    lines += [b"connection: close", b"", body]
    return b"\r\n".join(lines)


def head_too_large(limit: int) -> errors.HeadersTooLarge:
    return errors.HeadersTooLarge(f"the request line and headers exceed {limit} bytes")


def server_busy() -> errors.Unavailable:
    return errors.Unavailable(
        "the server holds its maximum of connections, all with a request in progress; retry shortly",
        headers={"Retry-After": "1"},
    )


class ConnectionGuard:
    """One connection's side of the limits: the request-head deadline, the bytes of the head being received,
    and its place among the open connections."""

    __slots__ = ("counted", "head_bytes", "in_head", "loop", "registry", "timer", "transport")

    def __init__(self, registry: Connections, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self.registry = registry
        self.transport = transport
        self.loop = loop
        self.timer: asyncio.TimerHandle | None = None
        self.counted = False
        self.in_head = True  # the bytes arriving now belong to a request head
        self.head_bytes = 0

    def admit(self) -> bool:
        """Count the new connection in, first closing the longest-waiting idle one at the cap; False when every
        open connection is busy and this one must be refused."""
        registry = self.registry
        if registry.open >= registry.limits.max_connections:
            registry.at_cap()
            victim = next(iter(registry.waiting), None)
            if victim is None:
                return False
            victim.close()
        registry.open += 1
        self.counted = True
        self.await_head()
        return True

    def await_head(self) -> None:
        """The connection is idle: the next request head must be complete within the timeout."""
        if self.transport.is_closing():
            return
        self.registry.waiting.pop(self, None)
        self.registry.waiting[self] = None  # to the end: the newest waiter
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(self.registry.limits.header_timeout, self.expired)

    def head_complete(self) -> None:
        self.in_head = False
        self.head_bytes = 0
        self.registry.waiting.pop(self, None)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def message_complete(self) -> None:
        """The request's body is in: what arrives next is the head of the next request."""
        self.in_head = True
        self.head_bytes = 0

    def received(self, size: int) -> None:
        if self.in_head:
            self.head_bytes += size

    @property
    def head_over_cap(self) -> bool:
        return self.in_head and self.head_bytes > self.registry.limits.max_header_bytes

    def expired(self) -> None:
        self.timer = None
        if self in self.registry.waiting:
            log.debug("closing a connection whose request head did not arrive in time")
            self.close()

    def close(self) -> None:
        self.registry.waiting.pop(self, None)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def lost(self) -> None:
        self.close()
        if self.counted:
            self.counted = False
            self.registry.open -= 1

    def refuse(self, exc: errors.BrokerError, default_headers: list[tuple[bytes, bytes]]) -> None:
        """Answer ``exc`` and close the connection."""
        if not self.transport.is_closing():
            self.transport.write(raw_error(exc, default_headers))
        self.close()


class _Limited:
    """What both protocol classes share: the per-process registry (built on first use from the settings) and
    the admission of each connection. First among the bases, so that it wraps uvicorn's protocol."""

    registry: ClassVar[Connections | None] = None
    guard: ConnectionGuard | None = None
    refused = False
    loop: asyncio.AbstractEventLoop
    server_state: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admitted by the process's registry, or answered 503 and closed (every connection busy)."""
        super().connection_made(transport)  # type: ignore[misc]
        self.guard = ConnectionGuard(self.process_connections(), cast(asyncio.Transport, transport), self.loop)
        if not self.guard.admit():
            self.refused = True
            self.guard.refuse(server_busy(), self.server_state.default_headers)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.guard is not None:
            self.guard.lost()
        super().connection_lost(exc)  # type: ignore[misc]

    @classmethod
    def process_connections(cls) -> Connections:
        if cls.registry is None:
            cls.registry = Connections(ConnectionLimits.from_settings(Settings.from_env()))
        return cls.registry

    @classmethod
    def with_limits(cls, limits: ConnectionLimits) -> type[Any]:
        """This protocol with ``limits`` instead of the settings' (a server run in process: ``uvicorn.Config(
        http=HttpToolsServer.with_limits(...))``). Not for ``broker serve``, whose processes import the class
        by name."""
        return type(cls.__name__, (cls,), {"registry": Connections(limits)})


def head_size(target: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """The size of a parsed request head: its target, its headers and the rest of the request line (the method
    and version, about ``HEAD_OVERHEAD`` bytes) as sent."""
    return len(target) + sum(len(name) + len(value) + 4 for name, value in headers) + HEAD_OVERHEAD


if HttpToolsProtocol is not None:

    class HttpToolsServer(_Limited, HttpToolsProtocol):
        """uvicorn's httptools protocol with the head cap, the head deadline and the connection cap."""

        def data_received(self, data: bytes) -> None:
            guard = self.guard
            if self.refused or guard is None or self.transport.is_closing():
                return
            guard.received(len(data))
            super().data_received(data)
            if guard.head_over_cap and not self.refused:
                self._refuse_head(guard)

        def _refuse_head(self, guard: ConnectionGuard) -> None:
            self.refused = True
            limit = guard.registry.limits.max_header_bytes
            log.debug("refused a request head over %d bytes", limit)
            guard.refuse(head_too_large(limit), self.server_state.default_headers)

        def send_400_response(self, msg: str) -> None:
            if not self.refused and not self.transport.is_closing():
                super().send_400_response(msg)

        def on_headers_complete(self) -> None:
            guard = self.guard
            if self.refused or guard is None:
                return  # the rest of a refused connection's last read is parsed, and ignored
            if head_size(self.url, self.headers) > guard.registry.limits.max_header_bytes:
                self._refuse_head(guard)
                return
            guard.head_complete()
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self.refused:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self.refused:
                return
            if self.guard is not None:
                self.guard.message_complete()
            super().on_message_complete()

        def on_response_complete(self) -> None:
            idle = not self.pipeline  # else the next request, already read, starts now
            super().on_response_complete()
            if idle and self.guard is not None:
                self.guard.await_head()


class H11Server(_Limited, H11Protocol):
    """uvicorn's h11 protocol with the same limits; h11 bounds the buffer of an incomplete head itself."""

    head_too_large = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = self.process_connections().limits.max_header_bytes
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limit)
        next_event = self.conn.next_event

        def checked_next_event() -> Any:
            try:
                event = next_event()
            except h11.RemoteProtocolError as exc:
                self.head_too_large = exc.error_status_hint == 431
                raise
            if isinstance(event, h11.Request):
                if head_size(event.target, list(event.headers)) > limit:
                    self.head_too_large = True
                    raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
                if self.guard is not None:
                    self.guard.head_complete()
            return event

        self.conn.next_event = checked_next_event  # type: ignore[method-assign]

    def data_received(self, data: bytes) -> None:
        if not self.refused and not self.transport.is_closing():
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        if self.refused or self.transport.is_closing():
            return
        if self.head_too_large and self.guard is not None:
            self.refused = True
            self.guard.refuse(head_too_large(self.guard.registry.limits.max_header_bytes),
                              self.server_state.default_headers)
            return
        super().send_400_response(msg)

    def on_response_complete(self) -> None:
        if self.guard is not None:
            self.guard.await_head()  # a pipelined request parsed below completes its head at once
        super().on_response_complete()


def protocol_name() -> str:
    """The ``http`` argument of uvicorn for ``broker serve``: the httptools protocol when httptools is installed."""
    return "broker.http.server:HttpToolsServer" if httptools is not None else "broker.http.server:H11Server"
