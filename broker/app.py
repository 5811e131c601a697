"""The ASGI application: ``create_app(settings)`` with an explicit route list and a lifespan that
builds the shared state (Redis client, scripts, store, key ring, long-poll notifier)."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import Receive, Scope, Send

from broker import errors
from broker.auth import KeyRing
from broker.context import Context
from broker.fastpath import FastPath
from broker.http import BodyDeadline, RequestContext, handle_error
from broker.instance import InstanceGuard, store_error
from broker.notify import Notifier
from broker.ratelimit import LongPollSlots, RateLimiter
from broker.routes import dlq, health, messages, push, queues
from broker.scripts import Scripts
from broker.settings import Settings
from broker.store import Store

log = logging.getLogger("broker.app")

ROUTES = [*health.routes, *queues.routes, *messages.routes, *dlq.routes, *push.routes]


CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)


def connect(url: str) -> Any:
    """A Redis client for the service: short connect and socket timeouts so an unreachable store is
    answered with 503 quickly instead of hanging. ``redis+cluster://host:port`` (or ``rediss+cluster``)
    connects to a Redis Cluster through any of its nodes."""
    options: dict[str, Any] = {"socket_connect_timeout": 1.0, "socket_timeout": 3.0, "max_connections": 512}
    if is_cluster_url(url):
        return RedisCluster.from_url(url.replace("+cluster", "", 1), **options)
    return aioredis.Redis.from_url(url, health_check_interval=10, **options)


def pubsub_client(client: Any) -> Any:
    """The client that long-poll notifications subscribe on. A Cluster client has no pub/sub, but a
    PUBLISH reaches every node of a cluster, so a plain connection to one node hears all of them."""
    if isinstance(client, RedisCluster):
        node = client.get_default_node() or client.get_nodes()[0]
        kwargs = client.connection_kwargs
        return aioredis.Redis(
            host=node.host,
            port=node.port,
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            ssl=bool(kwargs.get("connection_class") and "SSL" in kwargs["connection_class"].__name__),
            socket_connect_timeout=1.0,
        )
    return client


class BrokerApp(Starlette):
    """Starlette, with the message POSTs served by the lean path (:mod:`broker.fastpath`) before the
    middleware stack: they are most of the traffic and need none of it."""

    def __init__(self, *, fast_path: FastPath, **kwargs: Any):
        super().__init__(**kwargs)
        self.fast_path = fast_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.fast_path.match(scope)
        if route is None:
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


def create_app(settings: Settings | None = None, *, redis: Any = None, clock: Any = None) -> BrokerApp:
    """The application. ``redis`` and ``clock`` let tests share a client or drive time."""
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        if redis is None and not settings.redis_url:
            raise RuntimeError("BROKER_REDIS_URL is not set (broker serve starts the embedded store and sets it)")
        client = redis if redis is not None else connect(settings.redis_url or "")
        # Reliability (broker/instance.py, broker/ratelimit.py): the store's identity is checked on every new
        # connection of our own client and every second; requests are admitted by rate limit and long-poll bound.
        guard = InstanceGuard(client, hook=redis is None and isinstance(client, aioredis.Redis))
        await guard.start()
        scripts = Scripts(client)
        with contextlib.suppress(Exception):  # loaded again on demand if the store is down now
            await scripts.load()
        store = Store(client, scripts, clock) if clock else Store(client, scripts)
        notifier = Notifier(pubsub_client(client))
        keyring = KeyRing(client, settings.api_keys, settings.auth_cache_seconds)
        limiter = RateLimiter(scripts)
        ctx = Context(
            settings=settings, redis=client, store=store, keyring=keyring, notifier=notifier,
            guard=guard, limiter=limiter, long_polls=LongPollSlots(settings.max_long_polls),
            body_deadline=BodyDeadline(settings.body_timeout_seconds),
        )
        if redis is None:
            settle_garbage_collector()
        background = None
        if settings.run_workers:
            from workers.inprocess import start_background

            background = await start_background(ctx)
        try:
            yield {"ctx": ctx}
        finally:
            if background is not None:
                await background.stop()
            await notifier.close()
            await limiter.close()
            await guard.stop()
            await scripts.close()
            if redis is None:
                await client.aclose()

    return BrokerApp(
        fast_path=FastPath(messages.BODY_ROUTES),
        routes=ROUTES,
        middleware=[Middleware(RequestContext)],
        exception_handlers={
            errors.BrokerError: handle_error,
            HTTPException: handle_error,
            redis_errors.RedisError: store_error,  # a store error a method did not map: 503, not 500
        },
        lifespan=lifespan,
    )


def app_from_env() -> BrokerApp:
    """Factory for ``uvicorn --factory broker.app:app_from_env`` (each uvicorn worker process)."""
    return create_app(Settings.from_env())
