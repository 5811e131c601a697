"""The shared state of one API process, built by the app's lifespan and reached by handlers as
``request.state.ctx``.

Every authenticated route starts with ``ctx.project(request)``, which is also where a request is
admitted: refused with 503 while the store is known to have lost its data or did not answer its last
check (``broker.store.instance``), then
authenticated, then charged to its project's rate limit (``broker.store.ratelimit``). ``ctx.body`` decodes the
body, and takes a long-poll slot for a consume that will wait. None of these costs a Redis round trip in
the normal case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import Request

from broker import errors
from broker.http.bound import extend_bound
from broker.http.edge import BodyDeadline, decode, read_body
from broker.schemas import ConsumeRequest
from broker.settings import DEFAULT_BODY_TIMEOUT_SECONDS, Settings
from broker.store.apikeys import KeyRing
from broker.store.instance import InstanceGuard
from broker.store.notify import Notifier
from broker.store.queues import Store
from broker.store.ratelimit import LongPollSlots, RateLimiter
from broker.telemetry.tracing import Tracing

T = TypeVar("T")


@dataclass
class Context:
    settings: Settings
    redis: Any
    store: Store
    keyring: KeyRing
    notifier: Notifier
    guard: InstanceGuard | None = None
    limiter: RateLimiter | None = None
    long_polls: LongPollSlots | None = None
    body_deadline: BodyDeadline = field(default_factory=lambda: BodyDeadline(DEFAULT_BODY_TIMEOUT_SECONDS))
    tracing: Tracing | None = None

    async def project(self, request: Request) -> str:
        """Admit the request: the store must not have lost its data, the key must be valid, and the
        project must be within its rate limit. Returns the project."""
        project = await self.admit(authorization_of(request.scope["headers"]))
        request.scope["state"]["project"] = project  # for the request's log line
        return project

    async def admit(self, authorization: str | None) -> str:
        """``project`` for the value of an Authorization header (the lean path has no Request)."""
        if self.guard is not None:
            self.guard.admit()
        project = self.keyring.cached_project(authorization) or await self.keyring.project_for(authorization)
        if self.limiter is not None and not self.limiter.admit_now(project):
            await self.limiter.admit(project)
        return project

    def store_state(self) -> str:
        """The state of the store's pipelined connection (for the log of a request past its bound)."""
        pipe = getattr(self.store.scripts, "pipe", None)
        return pipe.describe() if pipe is not None else "no pipelined connection"

    async def body(self, request: Request, type_: type[T], limit: int | None = None) -> T:
        return self.parse(await read_body(request, limit or self.settings.max_body_bytes, self.body_deadline), type_)

    def parse(self, body: bytes, type_: type[T], project: str | None = None) -> T:
        """Decode a request body; a consume of ``project`` that will wait also takes a long-poll slot, and its
        answer's bound is extended by its wait."""
        value = decode(body, type_)
        if isinstance(value, ConsumeRequest) and value.wait_seconds > 0:
            if self.long_polls is not None:
                self.long_polls.admit(project)
            extend_bound(value.wait_seconds)  # the answer's bound (broker.http.bound) starts after the wait
        return value


def repeated_authorization() -> errors.Unauthorized:
    """The answer to a request with more than one Authorization header, on every route: servers and proxies
    disagree on which one counts (the first, the last, both joined), so none is taken."""
    return errors.Unauthorized("more than one Authorization header; send exactly one")


def authorization_of(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The value of the request's one Authorization header (None without one); refused when repeated."""
    found: str | None = None
    for name, value in headers:
        if name == b"authorization":
            if found is not None:
                raise repeated_authorization()
            found = value.decode("latin-1")
    return found


def ctx_of(request: Request) -> Context:
    ctx: Context = request.state.ctx
    return ctx
