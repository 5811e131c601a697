"""Redis clients for the service: a plain client, or a Redis Cluster client for ``redis+cluster://`` URLs,
with short timeouts so an unreachable store is answered with 503 quickly instead of hanging."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)


def connect(url: str) -> Any:
    """A Redis client for ``url``. ``redis+cluster://host:port`` (or ``rediss+cluster``) connects to a Redis
    Cluster through any of its nodes."""
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
