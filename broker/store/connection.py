"""Redis clients for the service: a plain client, a Redis Cluster client for ``redis+cluster://`` URLs, or a
client of the primary that Redis Sentinel names for ``redis+sentinel://`` URLs (redis-py's Sentinel support:
every new connection asks the sentinels where the primary is, so after a failover the service finds the new
primary by itself). Short timeouts everywhere, so an unreachable store is answered with 503 quickly instead
of hanging."""

from __future__ import annotations

import contextlib
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel

from broker.sentinel_url import SentinelAddress, is_sentinel_url, parse_sentinel_url

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
CONNECT_TIMEOUT_S = 1.0
SOCKET_TIMEOUT_S = 3.0


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)


def _sentinel_client(address: SentinelAddress, options: dict[str, Any]) -> Any:
    tls: dict[str, Any] = {"ssl": True, **address.ssl_options} if address.ssl else {}
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(address.sentinels),
        sentinel_kwargs={
            "socket_connect_timeout": CONNECT_TIMEOUT_S,
            "socket_timeout": SOCKET_TIMEOUT_S,
            "username": address.sentinel_username,
            "password": address.sentinel_password,
            **tls,
        },
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=SOCKET_TIMEOUT_S,
        username=address.username,
        password=address.password,
        db=address.db,
        **tls,
    )
    return sentinel.master_for(address.master, health_check_interval=10, max_connections=options["max_connections"])


def connect(url: str) -> Any:
    """A Redis client for ``url``. ``redis+cluster://host:port`` (or ``rediss+cluster``) connects to a Redis
    Cluster through any of its nodes; ``redis+sentinel://host:port[,host:port...]/<master-name>`` (or
    ``rediss+sentinel``) to the primary the sentinels name, found again on every new connection."""
    options: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT_S, "socket_timeout": SOCKET_TIMEOUT_S, "max_connections": 512,
    }
    if is_cluster_url(url):
        return RedisCluster.from_url(url.replace("+cluster", "", 1), **options)
    if is_sentinel_url(url):
        return _sentinel_client(parse_sentinel_url(url), options)
    return aioredis.Redis.from_url(url, health_check_interval=10, **options)


async def close_client(client: Any) -> None:
    """Close ``client`` and, for a Sentinel-managed one, its connections to the sentinels."""
    await client.aclose()
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", ()):
        with contextlib.suppress(Exception):
            await sentinel.aclose()


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
