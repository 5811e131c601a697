"""The message counters kept by the scripts (the queue's "ctr" hash, read by queue_metrics.lua for /metrics):
exact after a workload that moves messages every way, counting messages (not calls), and never touched by
a call that moved nothing, a repeated idempotent call or a refused one."""

from __future__ import annotations

from typing import Any

import pytest
from scriptkit import MakeQueue, message

from broker import errors
from broker.store.inspect import Inspector

COUNTERS = ("published", "delivered", "acked", "nacked", "lease_expired", "dead_lettered", "redriven", "purged")


async def counters(store: Any, project: str, queue: str) -> dict[str, int]:
    [found] = [m for m in await store.queue_metrics(project) if m.queue == queue]
    return {name: getattr(found, name) for name in COUNTERS}


async def test_a_workload_is_counted_exactly(make_queue: MakeQueue, store: Any, project: str, clock: Any) -> None:
    await make_queue("dead")
    jobs = await make_queue("jobs", dead_letter_queue="dead", max_retries=1, visibility_timeout_default=10)
    await jobs.publish(*range(6))                                # published 6
    await jobs.publish(message({"k": 1}, key="k1"))              # published 7
    await jobs.publish(message({"k": 1}, key="k1"))              # the same key: not stored again
    first = await jobs.claim(3)                                  # delivered 3
    await jobs.ack(first[0].message_id)                          # acked 1
    await store.ack(project, "jobs", [(m.message_id, m.receipt) for m in first[1:]], field="message_ids")  # 3
    a, b = await jobs.claim(2)                                   # delivered 5
    assert await jobs.nack(a.message_id)                         # nacked 1: requeued (attempt 1 of 2)
    assert not await jobs.nack(b.message_id, requeue=False)      # nacked 2: dead-lettered 1
    assert len(await jobs.claim(10)) == 3                        # delivered 8: a and the two never delivered
    clock.advance(11)                                            # the three leases end (lease_expired 3): a has
    await jobs.stats()                                           # used its retries (dead-lettered 2)
    assert await jobs.redrive() == 2                             # redriven 2: a and b
    assert await jobs.purge() == 4                               # purged 4: two requeued, two redriven
    assert await counters(store, project, "jobs") == {
        "published": 7, "delivered": 8, "acked": 3, "nacked": 2, "lease_expired": 3, "dead_lettered": 2,
        "redriven": 2, "purged": 4}
    # Dead letters are counted on the queue they left, not on the dead-letter queue that holds them.
    assert await counters(store, project, "dead") == dict.fromkeys(COUNTERS, 0)


async def test_calls_that_move_nothing_write_nothing(make_queue: MakeQueue, store: Any, project: str,
                                                     redis_client: Any) -> None:
    jobs = await make_queue("jobs")
    assert await jobs.claim() == []
    assert await jobs.purge() == 0
    assert await jobs.redrive() == 0
    await jobs.stats()
    assert not await redis_client.exists(jobs.keys.ctr)
    with pytest.raises(errors.MessageNotFound):
        await jobs.ack("0" * 19)
    assert not await redis_client.exists(jobs.keys.ctr)
    assert await counters(store, project, "jobs") == dict.fromkeys(COUNTERS, 0)


async def test_metrics_page_through_many_queues(make_queue: MakeQueue, store: Any, project: str) -> None:
    for i in range(7):
        queue = await make_queue(f"q{i}")
        await queue.publish(*range(i))
    found = await store.queue_metrics(project, page=3)
    assert [m.queue for m in found] == [f"q{i}" for i in range(7)]
    assert [m.available for m in found] == list(range(7)) == [m.published for m in found]
    assert all((m.oldest_enqueued_ms is None) == (m.available == 0) for m in found)


async def test_the_counters_go_with_the_queue(make_queue: MakeQueue, store: Any, project: str,
                                              redis_client: Any) -> None:
    jobs = await make_queue("jobs")
    await jobs.publish(1)
    await jobs.claim()
    assert await redis_client.exists(jobs.keys.ctr) and await redis_client.exists(jobs.keys.hist)
    assert await store.delete_queue(project, "jobs")
    assert not await redis_client.exists(jobs.keys.ctr) and not await redis_client.exists(jobs.keys.hist)


async def published_per_minute(store: Any, project: str, queue: str) -> dict[int, int]:
    points = await Inspector(store).history(project, queue, 1440)
    return {i - len(points) + 1: p.published for i, p in enumerate(points) if p.published}  # minute 0 = now


async def test_the_shared_counts_are_exact_across_minutes_and_clocks(make_queue: MakeQueue, store: Any,
                                                                      project: str, clock: Any,
                                                                      redis_client: Any) -> None:
    """published, acked, dead_lettered and push_success share the history's increment and reach "ctr" when
    their minute closes: the totals include the open minute, and a caller whose clock is behind (a minute
    already closed) is counted at once."""
    clock.ms = (clock.ms // 60_000) * 60_000 + 1_000
    jobs = await make_queue("jobs", max_retries=0)
    await jobs.publish(1, 2, 3)
    [a, b] = await jobs.claim(2)
    await jobs.ack(a.message_id)
    await jobs.nack(b.message_id, requeue=False)
    assert (await counters(store, project, "jobs"))["published"] == 3
    assert await redis_client.hget(jobs.keys.ctr, "published") is None  # the minute is still open
    clock.advance(60)
    await jobs.publish(4)
    assert await redis_client.hget(jobs.keys.ctr, "published") == b"3"  # the first minute is folded
    clock.advance(-30)  # a publisher whose clock is 30 s behind: in the closed first minute, twice
    await jobs.publish(5)
    await jobs.publish(6, 7)
    clock.advance(30 + 120)  # two minutes after the second
    await jobs.publish(8)
    assert await counters(store, project, "jobs") == {**dict.fromkeys(COUNTERS, 0), "published": 8, "delivered": 2,
                                                      "acked": 1, "nacked": 1, "dead_lettered": 1}
    assert await published_per_minute(store, project, "jobs") == {-3: 6, -2: 1, 0: 1}
    fields = {f.decode() for f in await redis_client.hkeys(jobs.keys.hist)}
    assert {f for f in fields if "+" in f} == {f"{clock.ms // 60_000}+p"}  # only the open minute is open


async def test_a_history_stored_before_the_counts_were_shared(make_queue: MakeQueue, store: Any, project: str,
                                                               clock: Any, redis_client: Any) -> None:
    """The counters and history as stored before they shared the increment ("ctr" holds every count, the
    history only "m:" fields): nothing is counted twice or lost, in the minute of the upgrade or after."""
    clock.ms = (clock.ms // 60_000) * 60_000 + 1_000
    jobs = await make_queue("jobs")
    minute = clock.ms // 60_000
    await redis_client.hset(jobs.keys.ctr, mapping={"published": 10, "delivered": 4})
    await redis_client.hset(jobs.keys.hist, mapping={f"{minute - 5}:p": 7, f"{minute - 5}:d": 7, f"{minute}:p": 3,
                                                     f"{minute}:d": 10, "last": minute})
    assert (await counters(store, project, "jobs"))["published"] == 10
    await jobs.publish(1, 2)  # the minute of the upgrade
    assert (await counters(store, project, "jobs"))["published"] == 12
    clock.advance(60)
    await jobs.publish(3)
    assert (await counters(store, project, "jobs"))["published"] == 13
    assert await redis_client.hget(jobs.keys.ctr, "published") == b"12"
    assert await published_per_minute(store, project, "jobs") == {-6: 7, -1: 5, 0: 1}
