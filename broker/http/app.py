"""The ASGI application: ``create_app(settings)`` with an explicit route list and a lifespan that
builds the shared state (Redis client, scripts, store, key ring, long-poll notifier)."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from redis import exceptions as redis_errors
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import Receive, Scope, Send

from broker import errors
from broker.http.context import Context
from broker.http.edge import BodyDeadline, RequestContext, handle_error
from broker.http.fastpath import FastPath
from broker.http.lifeline import follow_parent
from broker.http.openapi import document_bytes
from broker.http.routes import account, admin, dlq, docs, health, inspect, messages, metrics, push, queues, ui
from broker.jobs.inprocess import start_background
from broker.services import open_services
from broker.settings import Settings
from broker.sqs.edge import SqsEdge, is_sqs
from broker.store.apikeys import KeyRing, open_key_accounts
from broker.store.ratelimit import LongPollSlots, RateLimiter
from broker.store.sqskeys import SqsKeyRing, load_pepper
from broker.telemetry.logs import configure as configure_logging
from broker.telemetry.tracing import Tracing

log = logging.getLogger("broker.http.app")

ROUTES = [*health.routes, *queues.routes, *messages.routes, *dlq.routes, *push.routes, *docs.routes,
          *metrics.routes, *account.routes, *admin.routes, *inspect.routes, *ui.routes]


class BrokerApp(Starlette):
    """Starlette, with the message POSTs served by the lean path (:mod:`broker.http.fastpath`) before the
    middleware stack: they are most of the traffic and need none of it."""

    def __init__(self, *, fast_path: FastPath, **kwargs: Any):
        super().__init__(**kwargs)
        self.router.redirect_slashes = False  # a near-miss path is a 404 in the error shape, never a redirect
        self.fast_path = fast_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.fast_path.match(scope)
        if route is None and is_sqs(scope):  # the SQS-compatible edge (docs/sqs.md)
            await scope["state"]["sqs"](scope, receive, send)
        elif route is None:
            await super().__call__(scope, receive, send)
        else:
            await self.fast_path.serve(route, scope, receive, send)


#: Allocations between two young-generation collections (CPython's default is 700).
YOUNG_COLLECTION_THRESHOLD = 10_000


def settle_garbage_collector() -> None:
    """Once a server process has started: move what start-up allocated (modules, scripts, settings: tens of
    thousands of objects that live as long as the process) out of the collector's sight, so a full
    collection no longer scans them (15-33 ms each before, under 1 ms after), and collect the young
    generation less often. Measured in docs/performance.md."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


def create_app(
    settings: Settings | None = None, *, redis: Any = None, clock: Any = None, tracing: Tracing | None = None
) -> BrokerApp:
    """The application. ``redis``, ``clock`` and ``tracing`` let tests share a client, drive time or record
    spans."""
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with open_services(settings, redis=redis, clock=clock, guard=True, tracing=tracing) as services:
            # Reliability (broker/store/instance.py, broker/store/ratelimit.py): the store's identity is checked
            # on every new connection and every second; requests are admitted by rate limit and long-poll bound.
            keyring = KeyRing(services.redis, settings.api_keys, settings.auth_cache_seconds)
            limiter = RateLimiter(services.scripts)
            ctx = Context(
                settings=settings, redis=services.redis, store=services.store, keyring=keyring,
                notifier=services.notifier, guard=services.guard, limiter=limiter,
                long_polls=LongPollSlots(settings.max_long_polls, settings.long_polls_per_project),
                body_deadline=BodyDeadline(settings.body_timeout_seconds), tracing=services.tracing,
            )
            sqs_keys = SqsKeyRing(services.redis, lambda: load_pepper(settings.sqs_pepper, settings.data_dir),
                                  settings.api_keys, settings.auth_cache_seconds)
            # Accounts of the projects of BROKER_API_KEYS (`broker serve` opens them too, should the store be down)
            with contextlib.suppress(errors.BrokerError, redis_errors.RedisError):
                await open_key_accounts(services.redis, settings.api_keys)
            if redis is None:
                settle_garbage_collector()
            background = await start_background(services) if settings.run_workers else None
            try:
                yield {"ctx": ctx, "sqs": SqsEdge.build(ctx, sqs_keys)}
            finally:
                if background is not None:
                    await background.stop()
                await limiter.close()

    app = BrokerApp(
        fast_path=FastPath(messages.BODY_ROUTES),
        routes=ROUTES,
        middleware=[Middleware(RequestContext)],
        exception_handlers={
            errors.BrokerError: handle_error,
            HTTPException: handle_error,
            redis_errors.RedisError: handle_error,  # a store failure a method did not map: by the one table
        },
        lifespan=lifespan,
    )
    app.state.openapi = document_bytes(ROUTES)  # GET /openapi.json: built once, from the route table
    return app


def app_from_env() -> BrokerApp:
    """Factory for ``uvicorn --factory broker.http.app:app_from_env`` (each uvicorn worker process)."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format, settings.access_log)
    follow_parent()  # one of the processes of `serve --workers N`: it dies with serve (broker/http/lifeline.py)
    return create_app(settings)
