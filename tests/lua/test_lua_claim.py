"""claim.lua with ack/nack/extend: delivery order, delays and lease deadlines to the millisecond, retries."""

from __future__ import annotations

from typing import Any

import pytest
from scriptkit import MakeQueue, Queue, message

from broker import errors
from broker.schemas import rfc3339

PRIORITIES = [0, 5, 9, 5, 0, 3]


async def test_priority_orders_delivery_when_enabled(make_queue: MakeQueue) -> None:
    q = await make_queue("prio", enable_priority=True)
    ids = await q.publish(*(message({"i": i}, priority=p) for i, p in enumerate(PRIORITIES)))
    expected = [ids[i] for i in sorted(range(len(ids)), key=lambda i: (-PRIORITIES[i], i))]
    assert await q.claim_ids(2) + await q.claim_ids(100) == expected


@pytest.mark.parametrize("config", [{}, {"type": "fifo", "enable_priority": True}])
async def test_priority_is_ignored_otherwise(make_queue: MakeQueue, config: dict[str, Any]) -> None:
    q = await make_queue("plain", **config)
    ids = await q.publish(*(message({"i": i}, priority=p) for i, p in enumerate(PRIORITIES)))
    assert await q.claim_ids(100) == ids


async def test_consume_returns_at_most_max_messages(queue: Queue) -> None:
    ids = await queue.publish(*range(5))
    assert await queue.claim_ids(2) == ids[:2]
    assert await queue.claim_ids(2) == ids[2:4]
    assert await queue.claim_ids(2) == ids[4:]
    assert await queue.claim_ids(2) == []


async def test_delayed_message_is_available_exactly_when_due(queue: Queue, clock: Any) -> None:
    mid = await queue.publish_one(0, delay=10)
    assert await queue.counts() == (0, 0, 1, 0)
    clock.advance(9.999)
    assert await queue.claim_ids() == []
    assert await queue.counts() == (0, 0, 1, 0)
    clock.advance(0.001)
    assert await queue.counts() == (1, 0, 0, 0)
    assert await queue.claim_ids() == [mid]


async def test_lease_ends_exactly_at_its_deadline(queue: Queue, clock: Any) -> None:
    mid = await queue.publish_one()
    [first] = await queue.claim(visibility=10)
    assert first.attempts == 1
    clock.advance(9.999)
    assert await queue.claim_ids() == []
    assert await queue.counts() == (0, 1, 0, 0)
    clock.advance(0.001)
    assert await queue.counts() == (1, 0, 0, 0)
    with pytest.raises(errors.LeaseExpired):
        await queue.ack(mid)
    [second] = await queue.claim()
    assert (second.message_id, second.attempts) == (mid, 2)
    assert second.receipt != first.receipt


async def test_ack_just_before_the_deadline_succeeds(queue: Queue, clock: Any) -> None:
    mid = await queue.publish_one()
    await queue.claim(visibility=10)
    clock.advance(9.999)
    assert await queue.ack(mid) == [mid]
    assert await queue.counts() == (0, 0, 0, 0)


async def test_queue_default_visibility_applies(make_queue: MakeQueue, clock: Any) -> None:
    q = await make_queue("vis", visibility_timeout_default=7)
    mid = await q.publish_one()
    [m] = await q.claim()
    assert m.lease_expires_at == rfc3339(clock() + 7000)
    clock.advance(6.999)
    assert await q.counts() == (0, 1, 0, 0)
    clock.advance(0.001)
    assert await q.claim_ids() == [mid]


async def test_lease_expiries_count_as_failed_deliveries(make_queue: MakeQueue, clock: Any) -> None:
    q = await make_queue("retry", max_retries=2)
    mid = await q.publish_one()
    for attempt in (1, 2, 3):
        [m] = await q.claim(visibility=5)
        assert m.attempts == attempt
        clock.advance(5)
    assert await q.counts() == (0, 0, 0, 1)
    [dead] = await q.dlq()
    assert (dead.message_id, dead.reason, dead.attempts, dead.source_queue) == (mid, "max_retries", 3, "retry")
    assert await q.claim_ids() == []


async def test_nack_requeues_by_default_until_retries_are_used(make_queue: MakeQueue) -> None:
    q = await make_queue("retry", max_retries=1)
    mid = await q.publish_one()
    await q.claim()
    assert await q.nack(mid) is True
    assert await q.counts() == (1, 0, 0, 0)
    [m] = await q.claim()
    assert m.attempts == 2
    assert await q.nack(mid) is False
    assert await q.counts() == (0, 0, 0, 1)
    assert [(d.reason, d.attempts) for d in await q.dlq()] == [("max_retries", 2)]


async def test_zero_retries_means_one_delivery(make_queue: MakeQueue, clock: Any) -> None:
    q = await make_queue("once", max_retries=0)
    await q.publish(1, 2)
    a, b = await q.claim_ids(visibility=1)
    assert await q.nack(a) is False
    clock.advance(1)
    assert await q.counts() == (0, 0, 0, 2)
    assert {d.message_id: d.reason for d in await q.dlq()} == {a: "max_retries", b: "max_retries"}


async def test_nack_with_delay(queue: Queue, clock: Any) -> None:
    mid = await queue.publish_one()
    await queue.claim()
    assert await queue.nack(mid, delay_ms=3000) is True
    assert await queue.counts() == (0, 0, 1, 0)
    clock.advance(2.999)
    assert await queue.claim_ids() == []
    clock.advance(0.001)
    assert await queue.claim_ids() == [mid]


async def test_nack_without_requeue_dead_letters_at_once(queue: Queue) -> None:
    mid = await queue.publish_one()
    await queue.claim()
    assert await queue.nack(mid, requeue=False) is False
    [dead] = await queue.dlq()
    assert (dead.message_id, dead.reason, dead.attempts) == (mid, "nack", 1)
    assert await queue.counts() == (0, 0, 0, 1)


@pytest.mark.parametrize("operation", ["ack", "nack", "extend"])
async def test_not_found_versus_lease_expired(queue: Queue, make_queue: MakeQueue, clock: Any, operation: str) -> None:
    async def call(q: Queue, mid: str, receipt: str | None = None) -> Any:
        if operation == "ack":
            return await q.ack(mid, receipt)
        if operation == "nack":
            return await q.nack(mid, receipt=receipt)
        return await q.extend(mid, 30, receipt)

    other = await make_queue("other")
    waiting, leased, acked, expired = await queue.publish(1, 2, 3, 4)
    await queue.publish_one(5, delay=60)
    for mid in await queue.claim_ids(4, visibility=10):
        if mid == waiting:
            await queue.nack(mid)  # available again, never leased now
    await queue.ack(acked)
    with pytest.raises(errors.MessageNotFound):
        await call(queue, "0000000000000000000")
    with pytest.raises(errors.MessageNotFound):
        await call(queue, acked)
    with pytest.raises(errors.MessageNotFound):
        await call(other, leased)  # another queue's message
    with pytest.raises(errors.LeaseExpired):
        await call(queue, waiting)
    clock.advance(10)
    with pytest.raises(errors.LeaseExpired):
        await call(queue, expired)


async def test_stale_receipt_is_refused(queue: Queue, clock: Any) -> None:
    mid = await queue.publish_one()
    [first] = await queue.claim(visibility=5)
    clock.advance(5)
    [second] = await queue.claim(visibility=5)
    for stale in (
        lambda: queue.ack(mid, first.receipt),
        lambda: queue.nack(mid, receipt=first.receipt),
        lambda: queue.extend(mid, 10, first.receipt),
    ):
        with pytest.raises(errors.LeaseExpired) as refused:
            await stale()
        assert refused.value.field == "receipt"
    assert await queue.ack(mid, second.receipt) == [mid]


async def test_stale_receipt_is_refused_after_redrive_reset_attempts(make_queue: MakeQueue) -> None:
    q = await make_queue("r", max_retries=0)
    mid = await q.publish_one()
    [first] = await q.claim()
    await q.nack(mid, receipt=first.receipt)
    assert await q.redrive(mid) == 1
    [second] = await q.claim()
    assert second.attempts == first.attempts == 1
    assert second.receipt != first.receipt
    with pytest.raises(errors.LeaseExpired):
        await q.ack(mid, first.receipt)
    assert await q.ack(mid, second.receipt) == [mid]


async def test_extend_moves_the_deadline(queue: Queue, clock: Any) -> None:
    mid = await queue.publish_one()
    [m] = await queue.claim(visibility=5)
    clock.advance(4)
    receipt, deadline = await queue.extend(mid, 10, m.receipt)
    assert receipt == m.receipt
    assert deadline == clock() + 10_000
    clock.advance(9.999)
    assert await queue.counts() == (0, 1, 0, 0)
    clock.advance(0.001)
    assert await queue.counts() == (1, 0, 0, 0)


async def test_ack_many_is_all_or_nothing(queue: Queue) -> None:
    a, b, c = await queue.publish(1, 2, 3)
    await queue.claim_ids(2)
    with pytest.raises(errors.LeaseExpired):
        await queue.store.ack(queue.project, queue.name, [(a, None), (c, None)], field="message_ids")
    assert await queue.counts() == (1, 2, 0, 0)
    assert await queue.store.ack(queue.project, queue.name, [(a, None), (b, None), (a, None)]) == [a, b]
    assert await queue.counts() == (1, 0, 0, 0)


async def test_consumed_message_fields(make_queue: MakeQueue, clock: Any) -> None:
    q = await make_queue("f", type="fifo")
    await q.publish_one(message({"k": [1, 2]}, priority=7, group="g1"))
    [m] = await q.claim(visibility=12.5)
    assert bytes(m.payload) == b'{"k":[1,2]}'
    assert (m.priority, m.group_id, m.attempts) == (7, "g1", 1)
    assert m.enqueued_at == rfc3339(clock())
    assert m.lease_expires_at == rfc3339(clock() + 12_500)
    assert m.receipt


async def test_acks_carried_by_a_claim_are_settled_before_it(queue: Queue, clock: Any) -> None:
    """claim.lua's ack pairs (the ack extension of consume): each leased one is acked and counted, the others are
    reported with the code ack.lua would fail with, and the claim then leases as usual."""
    store, project, name = queue.store, queue.project, queue.name
    first, second, third = await queue.publish(1, 2, 3)
    leased = {m.message_id: m for m in await queue.claim(2, visibility=5)}
    assert set(leased) == {first, second}
    messages, _wake, acked, failed, _nacked = await store.ack_and_claim(
        project, name, [(first, leased[first].receipt), (second, leased[first].receipt), ("0" * 19, None)], 5, None)
    assert acked == [first]
    assert [(f.message_id, f.code) for f in failed] == [(second, "LEASE_EXPIRED"), ("0" * 19, "MESSAGE_NOT_FOUND")]
    assert [m.message_id for m in messages] == [third]
    [metrics] = [m for m in await store.queue_metrics(project) if m.queue == name]
    assert (metrics.acked, metrics.delivered, metrics.in_flight) == (1, 3, 2)
    clock.advance(5)  # second's lease ended: it is leased again by the call that fails its ack
    messages, _wake, acked, failed, _nacked = await store.ack_and_claim(project, name, [(second, None)], 5, None)
    assert acked == [] and [f.code for f in failed] == ["LEASE_EXPIRED"]
    assert [(m.message_id, m.attempts) for m in messages] == [(second, 2)]
