"""Competing consumers: every message is delivered and acked exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from scriptkit import Queue, message

from broker.store.queues import Store

MESSAGES = 10_000
CONSUMERS = 8


@pytest.fixture
async def consumer_stores(store: Store, redis_client: Any) -> AsyncIterator[list[Store]]:
    """One store per consumer, each on its own Redis client (its own connections)."""
    settings = redis_client.connection_pool.connection_kwargs
    clients = [aioredis.Redis(**settings) for _ in range(CONSUMERS)]
    yield [Store(client, None, store.clock) for client in clients]
    for client in clients:
        await client.aclose()


async def test_consumers_racing_over_ten_thousand_messages(
    queue: Queue, consumer_stores: list[Store], redis_client: Any
) -> None:
    published: list[str] = []
    for start in range(0, MESSAGES, 1000):
        published += await queue.publish(*(message({"i": i}) for i in range(start, start + 1000)))
    assert len(set(published)) == MESSAGES

    async def consume(store: Store, max_messages: int) -> list[tuple[str, int]]:
        got: list[tuple[str, int]] = []
        while True:
            messages, _ = await store.claim(queue.project, queue.name, max_messages, 3_600_000)
            if not messages:
                return got
            for m in messages:
                await store.ack(queue.project, queue.name, [(m.message_id, m.receipt)])
                got.append((m.message_id, m.attempts))

    results = await asyncio.gather(*(consume(s, 1 + i % 4) for i, s in enumerate(consumer_stores)))
    delivered = [mid for got in results for mid, _ in got]
    assert len(delivered) == MESSAGES
    assert set(delivered) == set(published)
    assert {attempts for got in results for _, attempts in got} == {1}
    assert sum(1 for got in results if got) == CONSUMERS  # they really competed
    assert await queue.counts() == (0, 0, 0, 0)
    assert await redis_client.hlen(queue.keys.msgs) == 0
