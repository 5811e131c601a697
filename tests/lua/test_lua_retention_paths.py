"""Retention paths the model test does not reach: dead-letter queues with another retention, deadlines
capping delays and leases, messages held apart from their band's retention order."""
from __future__ import annotations

from typing import Any

import pytest
from support import Clock

from broker import errors
from broker.schemas import CreateQueueRequest
from broker.store.keys import ProjectKeys
from broker.store.queues import OutgoingMessage, Store

DAY = 86_400_000


@pytest.fixture
def clock() -> Clock:
    """A fixed start, so every date in these tests is the same on every run."""
    return Clock(1_800_000_000_000)


@pytest.fixture
def env(store: Store, clock: Clock, project: str, redis_client: Any) -> tuple[Store, Clock, str, Any]:
    """(The store, its clock, the test's project and the test Redis come from the suite's root conftest.)"""
    return store, clock, project, redis_client


async def pub(store, project, q, n=1, **kw):
    return await store.publish(project, q, [OutgoingMessage(b'{"x":1}', **kw) for _ in range(n)], batch=n > 1)


async def test_dead_letter_queue_retention_paths(env):
    store, clock, project, r = env
    pk = ProjectKeys(project)
    await store.create_queue(project, CreateQueueRequest(name="dead", message_retention_days=1))
    await store.create_queue(project, CreateQueueRequest(name="jobs", dead_letter_queue="dead", max_retries=0,
                                                         message_retention_days=2))
    t0 = clock.ms
    [m1] = await pub(store, project, "jobs")
    await store.claim(project, "jobs", 1, None)
    clock.ms = t0 + 10_000
    await store.nack(project, "jobs", m1, requeue=False)
    clock.ms = t0 + 20_000
    [m2] = await pub(store, project, "dead")
    clock.ms = t0 + 30_000
    [m3] = await pub(store, project, "jobs")
    clock.ms = t0 + 40_000
    [m5] = await pub(store, project, "jobs")
    clock.ms = t0 + 50_000
    [m6] = await pub(store, project, "dead")
    await store.update_queue(project, "dead", {"retention_days": 3}, None, "")
    got, _ = await store.claim(project, "jobs", 2, None)
    assert [g.message_id for g in got] == [m3, m5]
    await store.nack(project, "jobs", m3, requeue=False)  # 3 d, before m6 (1 d): apart
    await store.nack(project, "jobs", m5, requeue=False)
    dk = pk.queue("dead")
    expiry = {k.decode() for k in await r.zrange(dk.expiry, 0, -1)}
    assert expiry == {m3, m5}
    stats = await store.stats(project, "jobs")
    assert stats.dlq == 3
    # Order of the dead-letter queue: sequence order across both regions.
    got, _ = await store.claim(project, "dead", 10, 1000)
    assert [g.message_id for g in got] == [m1, m2, m3, m5, m6]
    assert await r.zcard(dk.expiry) == 0
    clock.ms += 1001  # leases end: all back
    s = await store.stats(project, "dead")
    assert s.available == 5
    assert {k.decode() for k in await r.zrange(dk.expiry, 0, -1)} == {m6}  # requeued in order m1..m6
    clock.ms = t0 + DAY  # m1 gone
    assert (await store.stats(project, "dead")).available == 4
    assert (await store.stats(project, "jobs")).dlq == 2
    clock.ms = t0 + 20_000 + DAY  # m2
    assert (await store.stats(project, "dead")).available == 3
    clock.ms = t0 + 50_000 + DAY - 1
    assert (await store.stats(project, "dead")).available == 3
    clock.ms = t0 + 50_000 + DAY  # m6
    assert (await store.stats(project, "dead")).available == 2
    clock.ms = t0 + 30_000 + 3 * DAY  # m3
    s = await store.stats(project, "dead")
    assert s.available == 1
    assert (await store.stats(project, "jobs")).dlq == 1
    got, _ = await store.claim(project, "dead", 10, None)
    assert [g.message_id for g in got] == [m5]
    clock.ms = t0 + 40_000 + 3 * DAY  # m5, in flight
    with pytest.raises(errors.MessageNotFound):
        await store.ack(project, "dead", [(m5, got[0].receipt)])
    s = await store.stats(project, "dead")
    assert (s.available, s.in_flight) == (0, 0)
    assert (await store.stats(project, "jobs")).dlq == 0
    assert await r.hlen(dk.msgs) == 0 and await r.zcard(dk.expiry) == 0


async def test_redrive_of_a_dead_letter_kept_apart(env):
    store, _clock, project, r = env
    pk = ProjectKeys(project)
    await store.create_queue(project, CreateQueueRequest(name="dead", message_retention_days=3))
    await store.create_queue(project, CreateQueueRequest(name="jobs", dead_letter_queue="dead", max_retries=0,
                                                         message_retention_days=2))
    [a] = await pub(store, project, "jobs")
    [b] = await pub(store, project, "dead")
    await store.update_queue(project, "dead", {"retention_days": 1}, None, "")
    await store.claim(project, "jobs", 1, None)
    await store.nack(project, "jobs", a, requeue=False)
    # a has the lower sequence; b (3 d) follows it with a later deadline: a fits before b.
    assert await r.zcard(pk.queue("dead").expiry) == 0
    [c] = await pub(store, project, "jobs")
    await store.claim(project, "jobs", 1, None)
    await store.nack(project, "jobs", c, requeue=False)  # after b (3 d) with 1 d: apart
    assert [k.decode() for k in await r.zrange(pk.queue("dead").expiry, 0, -1)] == [c]
    assert await store.redrive(project, "jobs", message_id=None, since_ms=None, max_messages=None,
                               idempotency_key=None, fp="") == 2
    assert await r.zcard(pk.queue("dead").expiry) == 0
    got, _ = await store.claim(project, "jobs", 5, None)
    assert [g.message_id for g in got] == [a, c]
    got, _ = await store.claim(project, "dead", 5, None)
    assert [g.message_id for g in got] == [b]


async def test_lease_capped_at_retention(env):
    store, clock, project, r = env
    pk = ProjectKeys(project)
    await store.create_queue(project, CreateQueueRequest(name="q", message_retention_days=1))
    t0 = clock.ms
    [m] = await pub(store, project, "q")
    clock.ms = t0 + DAY - 5000
    [got], _ = await store.claim(project, "q", 1, 60_000)
    assert await r.zscore(pk.queue("q").inflight, m) == t0 + DAY
    clock.ms = t0 + DAY - 2000
    _receipt, deadline = await store.extend(project, "q", m, got.receipt, 120_000)
    assert deadline == clock.ms + 120_000
    assert await r.zscore(pk.queue("q").inflight, m) == t0 + DAY
    s = await store.stats(project, "q")
    assert (s.available, s.in_flight) == (0, 1)
    clock.ms = t0 + DAY
    with pytest.raises(errors.MessageNotFound):
        await store.ack(project, "q", [(m, got.receipt)])
    s = await store.stats(project, "q")
    assert (s.available, s.in_flight, s.delayed) == (0, 0, 0)
    assert await r.hlen(pk.queue("q").msgs) == 0


async def test_delay_capped_at_retention(env):
    store, clock, project, r = env
    pk = ProjectKeys(project)
    await store.create_queue(project, CreateQueueRequest(name="q", message_retention_days=1))
    t0 = clock.ms
    [m] = await pub(store, project, "q")
    clock.ms = t0 + DAY - 10_000
    [got], _ = await store.claim(project, "q", 1, None)
    assert await store.nack(project, "q", m, receipt=got.receipt, delay_ms=60_000)
    assert await r.zscore(pk.queue("q").delayed, m) == t0 + DAY
    clock.ms = t0 + DAY - 1
    s = await store.stats(project, "q")
    assert (s.available, s.delayed) == (0, 1)
    clock.ms = t0 + DAY
    s = await store.stats(project, "q")
    assert (s.available, s.delayed) == (0, 0)
    assert await r.hlen(pk.queue("q").msgs) == 0


async def test_fifo_skewed_publisher(env):
    store, clock, project, r = env
    pk = ProjectKeys(project)
    await store.create_queue(project, CreateQueueRequest(name="f", type="fifo", message_retention_days=1))
    t0 = clock.ms
    [a] = await pub(store, project, "f", group_id="g")
    clock.ms = t0 - 5000
    [b] = await pub(store, project, "f", group_id="g")
    [c] = await pub(store, project, "f", group_id="h")
    clock.ms = t0
    assert {k.decode() for k in await r.zrange(pk.queue("f").expiry, 0, -1)} == {b, c}
    s = await store.stats(project, "f")
    assert s.available == 3 and s.oldest_age_seconds == 0  # the lowest sequence: a, enqueued at t0
    clock.ms = t0 - 5000 + DAY
    s = await store.stats(project, "f")
    assert s.available == 1
    got, _ = await store.claim(project, "f", 5, None)
    assert [g.message_id for g in got] == [a]


async def test_batch_publish_priority_bands(env):
    store, clock, project, r = env
    pk = ProjectKeys(project)
    await store.create_queue(project, CreateQueueRequest(name="p", enable_priority=True, message_retention_days=2))
    ids = await store.publish(project, "p", [OutgoingMessage(b"1", priority=p) for p in (0, 5, 9, 5, 0)], batch=True)
    await store.update_queue(project, "p", {"retention_days": 1}, None, "")
    clock.ms += 1000
    more = await store.publish(project, "p", [OutgoingMessage(b"1", priority=p) for p in (0, 9)], batch=True)
    assert {k.decode() for k in await r.zrange(pk.queue("p").expiry, 0, -1)} == set(more)
    got, _ = await store.claim(project, "p", 10, None)
    assert [g.message_id for g in got] == [ids[2], more[1], ids[1], ids[3], ids[0], ids[4], more[0]]
