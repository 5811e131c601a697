"""Maintenance with nobody consuming: ended leases, due delays and retention, bounded and safe to run
from several runners at once. The clock is driven, nothing sleeps."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker.jobs import tasks as jobs
from broker.jobs.maintenance import Maintenance
from broker.schemas import CreateQueueRequest
from broker.store.keys import ProjectKeys
from broker.store.queues import OutgoingMessage, Store


@pytest.fixture
def make_queue(store: Store, project: str) -> Any:
    async def make(name: str = "q", **config: Any) -> Any:
        await store.create_queue(project, CreateQueueRequest(name=name, **config))
        return ProjectKeys(project).queue(name)

    return make


async def publish(store: Store, project: str, queue: str, count: int = 1, delay_ms: int = 0) -> list[str]:
    messages = [OutgoingMessage(payload=b'{"n":%d}' % i, delay_ms=delay_ms) for i in range(count)]
    return await store.publish(project, queue, messages, batch=True)


async def test_ended_lease_goes_back_to_available(store, project, clock, redis_client, make_queue):
    qk = await make_queue()
    [mid] = await publish(store, project, "q")
    await store.claim(project, "q", 1, 10_000)
    maintenance = Maintenance(store, [project])
    assert await maintenance.sweep() == 0
    clock.advance(10)
    assert await maintenance.sweep() == 1
    assert await redis_client.zscore(qk.avail, mid) is not None
    assert await redis_client.zcard(qk.inflight) == 0
    assert await maintenance.sweep() == 0  # idempotent


async def test_last_lease_ending_dead_letters(store, project, clock, redis_client, make_queue):
    qk = await make_queue(max_retries=0)
    [mid] = await publish(store, project, "q")
    await store.claim(project, "q", 1, 1_000)
    clock.advance(1)
    assert await Maintenance(store, [project]).sweep() == 1
    assert await redis_client.zscore(qk.dead, mid) is not None
    items, _ = await store.dlq_list(project, "q", None, 10)
    assert [(i.message_id, i.reason) for i in items] == [(mid, "max_retries")]


async def test_due_delay_is_promoted(store, project, clock, redis_client, make_queue):
    qk = await make_queue()
    [mid] = await publish(store, project, "q", delay_ms=30_000)
    maintenance = Maintenance(store, [project])
    assert await maintenance.sweep() == 0
    clock.advance(30)
    assert await maintenance.sweep() == 1
    assert await redis_client.zscore(qk.avail, mid) is not None
    assert await redis_client.zcard(qk.delayed) == 0


async def test_retention_deletes_messages_and_dead_letters(store, project, clock, redis_client, make_queue):
    qk = await make_queue(message_retention_days=1)
    await publish(store, project, "q", 3)
    [leased] = (await store.claim(project, "q", 1, 60_000))[0]
    await store.nack(project, "q", leased.message_id, requeue=False)  # a dead letter in the queue's own area
    await store.claim(project, "q", 1, 3_600_000)  # one in flight
    assert await redis_client.hlen(qk.msgs) == 3
    clock.advance(86_400)
    assert await Maintenance(store, [project]).sweep() == 3
    assert await redis_client.hlen(qk.msgs) == 0
    for part in ("avail", "inflight", "dead", "dlqidx", "expiry"):
        assert await redis_client.zcard(getattr(qk, part)) == 0, part
    stats = await store.stats(project, "q")
    assert (stats.available, stats.in_flight, stats.delayed, stats.dlq) == (0, 0, 0, 0)  # what a user sees


async def test_maintenance_is_bounded(store, project, clock, redis_client, make_queue):
    qk = await make_queue()
    await publish(store, project, "q", 5)
    await store.claim(project, "q", 5, 1_000)
    clock.advance(1)
    once = Maintenance(store, [project], limit=2, max_rounds=1)
    assert await once.maintain_queue(project, "q") == 2
    assert await redis_client.zcard(qk.inflight) == 3
    assert await Maintenance(store, [project], limit=2).maintain_queue(project, "q") == 3
    assert await redis_client.zcard(qk.avail) == 5


async def test_missing_queue_is_skipped(store, project):
    assert await Maintenance(store, [project]).maintain_queue(project, "gone") == 0


async def test_two_runners_sweep_without_double_effects(store, project, clock, redis_client, make_queue):
    qks = [await make_queue(f"q{i}") for i in range(3)]
    for i in range(3):
        await publish(store, project, f"q{i}", 40)
        await store.claim(project, f"q{i}", 40, 1_000)
    clock.advance(1)
    runners = [Maintenance(store, [project], limit=7) for _ in range(2)]
    moved = await asyncio.gather(*(r.sweep() for r in runners))
    assert sum(moved) == 120  # each ended lease handled once
    for qk in qks:
        assert (await redis_client.zcard(qk.avail), await redis_client.zcard(qk.inflight)) == (40, 0)
    messages, _ = await store.claim(project, "q0", 100, 1_000)
    assert len(messages) == 40 and {m.attempts for m in messages} == {2}  # one requeue each, not two


async def test_job_function_and_project_listing(store, project, clock, redis_client, make_queue):
    qk = await make_queue()
    await publish(store, project, "q", 2)
    await store.claim(project, "q", 2, 1_000)
    clock.advance(1)
    assert await jobs.maintenance({"maintenance": Maintenance(store, [project])}) == 2
    assert project in await Maintenance(store).projects()
    names = [n async for n in store.queue_names(project)]
    assert names == ["q"] and await redis_client.zcard(qk.avail) == 2


async def test_queue_listing_pages(store, project, make_queue, monkeypatch):
    from broker.store import queues as module

    monkeypatch.setattr(module, "QUEUE_PAGE", 2)
    for i in range(5):
        await make_queue(f"q{i}")
    assert [n async for n in store.queue_names(project)] == [f"q{i}" for i in range(5)]
