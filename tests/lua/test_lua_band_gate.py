"""The band gate (lua/include/lifecycle.lua): maintenance reads the fronts of the priority bands of ``avail`` only
once the queue's ``band_expiry_ms`` has come. Every path that puts into a band a message whose retention deadline
is earlier than the gate lowers it, so retention still applies on time; a queue stored without the field works."""

from __future__ import annotations

from typing import Any

import pytest
from support import Clock

from broker.schemas import CreateQueueRequest
from broker.store.keys import ProjectKeys
from broker.store.queues import OutgoingMessage, Store

DAY = 86_400_000
T0 = 1_800_000_000_000


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


class Env:
    def __init__(self, store: Store, clock: Clock, project: str, redis: Any):
        self.store, self.clock, self.project, self.redis = store, clock, project, redis

    async def create(self, name: str, **config: Any) -> None:
        await self.store.create_queue(self.project, CreateQueueRequest(name=name, **config))

    async def publish(self, queue: str, **kw: Any) -> str:
        [mid] = await self.store.publish(self.project, queue, [OutgoingMessage(b'{"x":1}', **kw)], batch=False)
        return mid

    async def claim(self, queue: str, n: int = 10, visibility_ms: int | None = 3_600_000) -> list[str]:
        got, _ = await self.store.claim(self.project, queue, n, visibility_ms)
        return [m.message_id for m in got]

    async def gate(self, queue: str) -> str | None:
        raw = await self.redis.hget(ProjectKeys(self.project).queue(queue).cfg, "band_expiry_ms")
        return None if raw is None else raw.decode()

    async def forget_gate(self, queue: str) -> None:
        """As a queue stored before the gate existed."""
        await self.redis.hdel(ProjectKeys(self.project).queue(queue).cfg, "band_expiry_ms")

    async def stored(self, queue: str) -> int:
        return int(await self.redis.hlen(ProjectKeys(self.project).queue(queue).msgs))

    async def update(self, queue: str, **changes: Any) -> None:
        await self.store.update_queue(self.project, queue, changes, None, "")


@pytest.fixture
def env(store: Store, clock: Clock, project: str, redis_client: Any) -> Env:
    return Env(store, clock, project, redis_client)


async def test_gate_follows_the_fronts(env: Env) -> None:
    await env.create("q", message_retention_days=2)
    assert await env.gate("q") == "inf"  # created empty
    a = await env.publish("q")
    assert await env.gate("q") == str(T0 + 2 * DAY)
    env.clock.ms = T0 + 1000
    b = await env.publish("q")
    assert await env.gate("q") == str(T0 + 2 * DAY)  # a later deadline does not move it
    assert await env.claim("q", 1) == [a]
    assert await env.gate("q") == str(T0 + 2 * DAY)  # before it comes, the fronts are not read
    env.clock.ms = T0 + 2 * DAY  # a, in flight, reaches retention; the fronts are read: b's deadline
    assert await env.claim("q", 1) == [b]
    assert await env.gate("q") == str(T0 + 1000 + 2 * DAY)
    assert await env.stored("q") == 1


async def test_the_fronts_are_not_read_before_the_gate(env: Env) -> None:
    """The gate is what decides: a front past its deadline is left alone while the gate is ahead (a state the
    scripts never leave; set by hand here), and removed once it has come."""
    await env.create("q", message_retention_days=1)
    a = await env.publish("q")
    await env.redis.hset(ProjectKeys(env.project).queue("q").cfg, "band_expiry_ms", T0 + 5 * DAY)
    env.clock.ms = T0 + DAY
    assert (await env.store.stats(env.project, "q")).available == 1
    env.clock.ms = T0 + 5 * DAY
    assert (await env.store.stats(env.project, "q")).available == 0
    assert await env.stored("q") == 0
    assert a


async def test_queue_stored_without_gate(env: Env) -> None:
    await env.create("q", message_retention_days=1, enable_priority=True)
    a = await env.publish("q", priority=9)
    env.clock.ms = T0 + 1000
    b = await env.publish("q", priority=0)
    c = await env.publish("q", priority=0)
    await env.forget_gate("q")
    env.clock.ms = T0 + 2000
    assert (await env.store.stats(env.project, "q")).available == 3  # reads the fronts, writes nothing
    assert await env.gate("q") is None
    assert await env.claim("q", 1) == [a]  # a call that writes keeps what its read found: a's deadline
    assert await env.gate("q") == str(T0 + DAY)
    env.clock.ms = T0 + 1000 + DAY - 1
    assert await env.claim("q", 1) == [b]
    assert await env.gate("q") == str(T0 + 1000 + DAY)
    env.clock.ms = T0 + 1000 + DAY
    assert await env.claim("q") == []
    assert await env.stored("q") == 0
    assert c


async def test_delayed_message_promoted_into_an_empty_band(env: Env) -> None:
    await env.create("q", message_retention_days=3)
    a = await env.publish("q")
    assert await env.claim("q", 1) == [a]
    await env.store.ack(env.project, "q", [(a, None)])  # the band is empty, the gate stays at a's deadline
    await env.update("q", retention_days=1)
    env.clock.ms = T0 + 1000
    b = await env.publish("q", delay_ms=10_000)  # deadline T0 + 1000 + 1 d, before the gate
    assert await env.gate("q") == str(T0 + 3 * DAY)
    env.clock.ms = T0 + 11_000
    assert (await env.store.stats(env.project, "q")).available == 1  # promoted: the gate comes down
    assert await env.gate("q") == str(T0 + 1000 + DAY)
    env.clock.ms = T0 + 1000 + DAY - 1
    assert (await env.store.stats(env.project, "q")).available == 1
    env.clock.ms = T0 + 1000 + DAY
    assert await env.claim("q") == []
    assert await env.stored("q") == 0
    assert b


async def test_redriven_message(env: Env) -> None:
    await env.create("q", message_retention_days=3, max_retries=0)
    a = await env.publish("q")
    assert await env.claim("q", 1) == [a]
    await env.store.nack(env.project, "q", a, requeue=False)  # dead letter in the own area
    await env.update("q", retention_days=1)
    env.clock.ms = T0 + 3_600_000
    b = await env.publish("q")  # into the empty band, with the new retention
    assert await env.gate("q") == str(T0 + 3_600_000 + DAY)
    assert await env.claim("q", 1, visibility_ms=2 * DAY) == [b]
    redriven = await env.store.redrive(env.project, "q", message_id=a, since_ms=None, max_messages=None,
                                       idempotency_key=None, fp="")
    assert redriven == 1  # a takes the queue's retention now: deleted at T0 + 1 d
    assert await env.gate("q") == str(T0 + DAY)
    env.clock.ms = T0 + DAY
    assert await env.claim("q") == []
    assert await env.stored("q") == 1  # b, in flight


@pytest.mark.parametrize("how", ["nack", "lease_end"])
async def test_message_requeued_before_the_fronts(env: Env, how: str) -> None:
    """The gate was raised to the fronts' deadline while an earlier message was in flight; it comes back to
    the front of its band."""
    await env.create("q", message_retention_days=2)
    a = await env.publish("q")
    assert await env.claim("q", 1, visibility_ms=60_000) == [a]
    env.clock.ms = T0 + 1000
    b = await env.publish("q")
    c = await env.publish("q")
    await env.forget_gate("q")
    env.clock.ms = T0 + 2000
    assert await env.claim("q", 1, visibility_ms=2 * DAY) == [b]  # reads the fronts: b's deadline
    assert await env.gate("q") == str(T0 + 1000 + 2 * DAY)
    if how == "nack":
        assert await env.store.nack(env.project, "q", a)
    else:
        env.clock.ms = T0 + 60_000
        assert (await env.store.stats(env.project, "q")).available == 2  # a's lease ended: requeued
    assert await env.gate("q") == str(T0 + 2 * DAY)
    env.clock.ms = T0 + 2 * DAY
    assert await env.claim("q") == [c]  # not a: gone
    assert await env.stored("q") == 2


async def test_lowered_retention_into_an_empty_band(env: Env) -> None:
    await env.create("q", message_retention_days=3, enable_priority=True)
    a = await env.publish("q", priority=9)
    await env.update("q", retention_days=1)
    env.clock.ms = T0 + 3_600_000
    b = await env.publish("q", priority=0)  # another band, empty: it joins it
    assert await env.gate("q") == str(T0 + 3_600_000 + DAY)
    env.clock.ms = T0 + 3_600_000 + DAY
    assert await env.claim("q") == [a]
    assert await env.stored("q") == 1
    assert b


async def test_fifo_lowered_retention(env: Env) -> None:
    await env.create("f", type="fifo", message_retention_days=3)
    a = await env.publish("f", group_id="g")
    assert await env.claim("f", 1) == [a]
    await env.store.ack(env.project, "f", [(a, None)])
    await env.update("f", retention_days=1)
    env.clock.ms = T0 + 1000
    b = await env.publish("f", group_id="h")
    assert await env.gate("f") == str(T0 + 1000 + DAY)
    env.clock.ms = T0 + 1000 + DAY
    assert await env.claim("f") == []
    assert await env.stored("f") == 0
    assert b


async def test_publisher_clock_behind(env: Env) -> None:
    await env.create("q", message_retention_days=1)
    a = await env.publish("q")
    assert await env.claim("q", 1, visibility_ms=2 * DAY) == [a]
    env.clock.ms = T0 - 5000
    b = await env.publish("q")  # the band is empty: it joins it, with an earlier deadline
    assert await env.gate("q") == str(T0 - 5000 + DAY)
    env.clock.ms = T0 - 5000 + DAY
    assert await env.claim("q") == []
    assert await env.stored("q") == 1  # a, in flight
    assert b


async def test_dead_letter_into_a_dead_letter_queue(env: Env) -> None:
    await env.create("dead", message_retention_days=1)
    await env.create("jobs", dead_letter_queue="dead", max_retries=0, message_retention_days=2)
    a = await env.publish("jobs")  # its deadline in "dead": T0 + 1 d
    env.clock.ms = T0 + 3_600_000
    x = await env.publish("dead")
    assert await env.claim("dead", 1, visibility_ms=2 * DAY) == [x]  # the band is empty, the gate at x's deadline
    assert await env.claim("jobs", 1) == [a]
    await env.store.nack(env.project, "jobs", a, requeue=False)
    assert await env.gate("dead") == str(T0 + DAY)
    env.clock.ms = T0 + DAY
    assert await env.claim("dead") == []
    assert await env.stored("dead") == 1  # x, in flight


async def test_scan_cut_short_by_the_limit(env: Env) -> None:
    await env.create("q", message_retention_days=1)
    for _ in range(3):
        await env.publish("q")
    env.clock.ms = T0 + DAY
    assert await env.store.maintain(env.project, "q", limit=2) == 2
    assert await env.gate("q") == str(T0 + DAY)  # not all read: stays
    assert await env.store.maintain(env.project, "q", limit=2) == 1
    assert await env.gate("q") == "inf"  # all read: no message left in a band
    assert await env.stored("q") == 0


async def test_purge_empties_the_bands(env: Env) -> None:
    await env.create("q", message_retention_days=1)
    await env.publish("q")
    await env.store.purge(env.project, "q", None, "")
    assert await env.gate("q") == "inf"
    env.clock.ms = T0 + 1000
    await env.publish("q")
    assert await env.gate("q") == str(T0 + 1000 + DAY)


async def test_background_maintenance_corrects_a_gate_that_is_too_late(env: Env) -> None:
    """Scripts of an older version (a rolling upgrade) put messages into a band without lowering the gate: the
    background maintenance reads the fronts every time and brings the gate down; the consumers' calls do not."""
    await env.create("q", message_retention_days=1)
    a = await env.publish("q")
    await env.redis.hset(ProjectKeys(env.project).queue("q").cfg, "band_expiry_ms", "inf")  # as an older publish
    env.clock.ms = T0 + 1000
    assert (await env.store.stats(env.project, "q")).available == 1
    assert await env.gate("q") == "inf"
    assert await env.store.maintain(env.project, "q") == 0
    assert await env.gate("q") == str(T0 + DAY)
    env.clock.ms = T0 + DAY
    assert await env.claim("q") == []
    assert await env.stored("q") == 0
    assert a
    # And where no consumer comes, the background maintenance deletes it at its deadline anyway.
    b = await env.publish("q")
    await env.redis.hset(ProjectKeys(env.project).queue("q").cfg, "band_expiry_ms", "inf")
    env.clock.ms = T0 + 2 * DAY
    assert await env.store.maintain(env.project, "q") == 1
    assert await env.stored("q") == 0
    assert await env.gate("q") == "inf"
    assert b
