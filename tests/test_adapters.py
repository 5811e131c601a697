"""The private parts of the libraries the service relies on are still there (an upgrade that removes them
fails here, loudly, instead of at run time). Push delivery uses aiohttp through public parameters only
(broker/push/pool.py)."""

from __future__ import annotations

from broker.store import redis_adapter


def test_redis_py_still_has_what_the_pipelined_connection_uses() -> None:
    redis_adapter.check()
