"""What the API processes, the arq workers and the in-process runner share, built and closed in one place:
the Redis client, the scripts, the store, the long-poll notifier and (for the API) the store-identity guard.

``open_services(settings)`` is an async context manager; on exit it closes what it opened, in reverse
order. A client passed in (tests) is used as it is and left open.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from broker.settings import ConfigError, Settings
from broker.store.connection import close_client, connect, pubsub_client
from broker.store.instance import InstanceGuard
from broker.store.notify import Notifier
from broker.store.queues import Store
from broker.store.scripts import ReplicaAcks, Scripts
from broker.telemetry.tracing import Tracing


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: Any
    scripts: Scripts
    store: Store
    notifier: Notifier
    guard: InstanceGuard | None
    tracing: Tracing


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    redis: Any = None,
    clock: Callable[[], int] | None = None,
    guard: bool = False,
    tracing: Tracing | None = None,
) -> AsyncIterator[Services]:
    """Connect to the store of ``settings`` (or use ``redis``), load the scripts, and build the store and the
    notifier. With ``guard=True`` the store's identity is checked (broker/store/instance.py): on every new
    connection of a client opened here, and every second."""
    if redis is None and not settings.redis_url:
        raise ConfigError("BROKER_REDIS_URL is not set (broker serve starts the embedded store and sets it)")
    own_client = redis is None
    client = connect(settings.redis_url or "") if own_client else redis
    instance_guard: InstanceGuard | None = None
    scripts: Scripts | None = None
    notifier: Notifier | None = None
    try:  # what was started is stopped also when the start itself is cancelled (a SIGTERM while starting)
        if guard:
            instance_guard = InstanceGuard(client, hook=own_client and isinstance(client, aioredis.Redis))
            await instance_guard.start()
        scripts = Scripts(client, acks=ReplicaAcks(settings.replica_acks, settings.replica_ack_timeout_ms))
        with contextlib.suppress(Exception):  # loaded again on demand if the store is down now
            await scripts.load()
        store = Store(client, scripts, clock) if clock else Store(client, scripts)
        notifier = Notifier(pubsub_client(client))
        yield Services(settings, client, scripts, store, notifier, instance_guard, tracing or Tracing.from_env())
    finally:
        if notifier is not None:
            await notifier.close()
        if instance_guard is not None:
            await instance_guard.stop()
        if scripts is not None:
            await scripts.close()
        if own_client:
            await close_client(client)
