"""The private parts of the libraries the service relies on are still there (an upgrade that removes them
fails here, loudly, instead of at run time)."""

from __future__ import annotations

from broker.push import httpx_adapter
from broker.store import redis_adapter


def test_redis_py_still_has_what_the_pipelined_connection_uses() -> None:
    redis_adapter.check()


def test_httpx_still_keeps_the_pool_that_push_delivery_replaces() -> None:
    httpx_adapter.check()
