"""lua/include/account.lua through the store, with a driven clock: 32 clients on 32 connections of their own
race for the last units of credit and of the limits (no overdraft, no lost meter increment), uncharged calls
(a long poll's later attempts, push delivery) are metered and not debited, usage expires after its days."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from broker import errors
from broker.schemas import CreateQueueRequest
from broker.store.accounts import DAY_MS, Accounts, day_of
from broker.store.keys import ProjectKeys
from broker.store.queues import OutgoingMessage, Store

RACERS = 32


@pytest.fixture
async def racers(store: Store, redis_client: Any) -> AsyncIterator[list[Store]]:
    """One store per racer, each on its own Redis client (its own connection: no shared pipeline)."""
    settings = redis_client.connection_pool.connection_kwargs
    clients = [aioredis.Redis(**settings) for _ in range(RACERS)]
    yield [Store(client, None, store.clock) for client in clients]
    for client in clients:
        await client.aclose()


@pytest.fixture
async def accounts(store: Store, project: str) -> Accounts:
    found = Accounts(store.redis, store.scripts)
    await found.create(project, None, store.clock())
    await store.create_queue(project, CreateQueueRequest(name="q"))
    return found


async def outcomes(calls: list[Any]) -> tuple[int, list[BaseException]]:
    results = await asyncio.gather(*calls, return_exceptions=True)
    refused = [r for r in results if isinstance(r, BaseException)]
    return len(results) - len(refused), refused


async def test_32_connections_cannot_overdraw(store: Store, racers: list[Store], accounts: Accounts, project: str,
                                              redis_client: Any) -> None:
    await accounts.add_credit(project, 7)
    batch = [OutgoingMessage(payload=b"1"), OutgoingMessage(payload=b"2")]  # 2 units each
    ok, refused = await outcomes([s.publish(project, "q", batch, batch=True) for s in racers])
    assert ok == 3 and all(isinstance(e, errors.InsufficientCredit) for e in refused)
    assert (await accounts.get(project)).credit == 1
    assert await redis_client.hlen(ProjectKeys(project).queue("q").msgs) == 6
    usage = {r.capability: r for r in await accounts.usage(project, day_of(store.clock()), day_of(store.clock()))}
    assert (usage["queue.publish_batch"].calls, usage["queue.publish_batch"].published) == (3, 6)
    assert usage["queue.publish_batch"].bytes == 6


async def test_32_connections_stop_exactly_at_max_messages(store: Store, racers: list[Store], accounts: Accounts,
                                                           project: str, redis_client: Any) -> None:
    await accounts.update(project, {"limits": {"max_messages": 5}}, store.clock())
    ok, refused = await outcomes([s.publish(project, "q", [OutgoingMessage(payload=b"1")], batch=False)
                                  for s in racers])
    assert ok == 5 and all(isinstance(e, errors.QuotaExceeded) for e in refused)
    assert await redis_client.hlen(ProjectKeys(project).queue("q").msgs) == 5


async def test_uncharged_claims_are_metered_not_debited(store: Store, accounts: Accounts, project: str) -> None:
    await accounts.add_credit(project, 3)
    await store.publish(project, "q", [OutgoingMessage(payload=b"1"), OutgoingMessage(payload=b"2")], batch=True)
    await store.claim(project, "q", 1, 30_000, charged=False)  # a long poll's later attempt, or push delivery
    assert (await accounts.get(project)).credit == 1
    await store.claim(project, "q", 1, 30_000)
    assert (await accounts.get(project)).credit == 0
    with pytest.raises(errors.InsufficientCredit):
        await store.claim(project, "q", 1, 30_000)
    await store.claim(project, "q", 1, 30_000, charged=False)  # still served: it is not charged
    usage = {r.capability: r for r in await accounts.usage(project, day_of(store.clock()), day_of(store.clock()))}
    assert (usage["queue.consume"].calls, usage["queue.consume"].delivered) == (1, 2)


async def test_a_disabled_project_is_refused_by_the_script(store: Store, accounts: Accounts, project: str) -> None:
    await accounts.update(project, {"disabled": True}, store.clock())
    with pytest.raises(errors.Unauthorized):
        await store.publish(project, "q", [OutgoingMessage(payload=b"1")], batch=False)


async def test_a_project_without_an_account_is_not_metered(store: Store, make_project: Any,
                                                           redis_client: Any) -> None:
    other = make_project()
    await store.create_queue(other, CreateQueueRequest(name="q"))
    await store.publish(other, "q", [OutgoingMessage(payload=b"1")], batch=False)
    assert not await redis_client.exists(ProjectKeys(other).usage(day_of(store.clock())))
    assert not await redis_client.exists(ProjectKeys(other).account)


async def test_usage_expires_its_days_after_the_day(store: Store, accounts: Accounts, project: str,
                                                    redis_client: Any, clock: Any) -> None:
    await accounts.update(project, {"usage_retention_days": 3}, clock())
    await store.publish(project, "q", [OutgoingMessage(payload=b"1")], batch=False)
    day = day_of(clock())
    expires_ms = await redis_client.pexpiretime(ProjectKeys(project).usage(day))
    assert expires_ms == (day + 1 + 3) * DAY_MS
    clock.advance(86_400)  # the next day has a hash of its own
    await store.publish(project, "q", [OutgoingMessage(payload=b"1")], batch=False)
    rows = await accounts.usage(project, day, day + 1)
    assert [(r.day, r.capability, r.calls) for r in rows if r.capability == "queue.publish"] == [
        (rows[0].day, "queue.publish", 1), (rows[-1].day, "queue.publish", 1)]
    assert rows[0].day != rows[-1].day
