"""FIFO queues: per-group order, consecutive batches, groups held while in flight, retrying or delayed."""

from __future__ import annotations

from typing import Any

import pytest
from scriptkit import MakeQueue, Queue, message

from broker import errors


@pytest.fixture
async def fifo(make_queue: MakeQueue) -> Queue:
    return await make_queue("orders", type="fifo", max_retries=3)


async def publish_groups(q: Queue, groups: str) -> dict[str, list[str]]:
    """Publish one message per letter of ``groups`` ("aab" -> a1, a2, b1); ids by group in publish order."""
    ids = await q.publish(*(message({"g": g, "i": i}, group=g) for i, g in enumerate(groups)))
    by_group: dict[str, list[str]] = {}
    for g, mid in zip(groups, ids, strict=True):
        by_group.setdefault(g, []).append(mid)
    return by_group


async def test_one_consume_returns_consecutive_messages_of_each_group(fifo: Queue) -> None:
    ids = await publish_groups(fifo, "aabab")
    got = await fifo.claim_ids(10)
    assert got == ids["a"] + ids["b"]


async def test_max_messages_caps_the_run_of_a_group(fifo: Queue) -> None:
    ids = await publish_groups(fifo, "aaab")
    assert await fifo.claim_ids(2) == ids["a"][:2]
    # a3 waits behind the two in flight; b proceeds in parallel.
    assert await fifo.claim_ids(10) == ids["b"]
    await fifo.ack(ids["a"][0])
    assert await fifo.claim_ids(10) == []
    await fifo.ack(ids["a"][1])
    assert await fifo.claim_ids(10) == ids["a"][2:]


async def test_group_waits_while_its_message_is_in_flight(fifo: Queue) -> None:
    ids = await publish_groups(fifo, "aa")
    assert await fifo.claim_ids(1) == ids["a"][:1]
    assert await fifo.claim_ids(10) == []
    await fifo.ack(ids["a"][0])
    assert await fifo.claim_ids(10) == ids["a"][1:]


async def test_group_waits_for_a_retry_and_redelivers_in_order(fifo: Queue, clock: Any) -> None:
    ids = await publish_groups(fifo, "aab")
    first, second = ids["a"]
    assert await fifo.claim_ids(1) == [first]
    await fifo.nack(first, delay_ms=5000)
    assert await fifo.claim_ids(10) == ids["b"]
    clock.advance(4.999)
    assert await fifo.claim_ids(10) == []
    clock.advance(0.001)
    assert await fifo.claim_ids(10) == [first, second]


async def test_lease_expiry_redelivers_the_group_in_order(fifo: Queue, clock: Any) -> None:
    ids = await publish_groups(fifo, "aaa")
    assert await fifo.claim_ids(10, visibility=5) == ids["a"]
    clock.advance(5)
    assert await fifo.counts() == (3, 0, 0, 0)
    assert await fifo.claim_ids(2) == ids["a"][:2]


async def test_delayed_head_holds_back_its_group(fifo: Queue, clock: Any) -> None:
    head = await fifo.publish_one(message({"i": 0}, group="a", delay=10))
    later = await fifo.publish_one(message({"i": 1}, group="a"))
    other = await fifo.publish_one(message({"i": 2}, group="b"))
    assert await fifo.claim_ids(10) == [other]
    clock.advance(9.999)
    assert await fifo.claim_ids(10) == []
    clock.advance(0.001)
    assert await fifo.claim_ids(10) == [head, later]


async def test_delayed_message_behind_the_head_stops_the_run(fifo: Queue, clock: Any) -> None:
    a1 = await fifo.publish_one(message({"i": 0}, group="a"))
    a2 = await fifo.publish_one(message({"i": 1}, group="a", delay=10))
    a3 = await fifo.publish_one(message({"i": 2}, group="a"))
    assert await fifo.claim_ids(10) == [a1]
    await fifo.ack(a1)
    assert await fifo.claim_ids(10) == []
    clock.advance(10)
    assert await fifo.claim_ids(10) == [a2, a3]


async def test_dead_lettered_head_releases_its_group(make_queue: MakeQueue) -> None:
    q = await make_queue("once", type="fifo", max_retries=0)
    ids = await publish_groups(q, "aa")
    assert await q.claim_ids(1) == ids["a"][:1]
    assert await q.nack(ids["a"][0]) is False
    assert await q.claim_ids(10) == ids["a"][1:]
    assert await q.dlq_ids() == ids["a"][:1]


async def test_messages_without_group_form_one_group(fifo: Queue) -> None:
    ids = await fifo.publish(1, 2, 3)
    assert await fifo.claim_ids(2) == ids[:2]
    assert await fifo.claim_ids(10) == []
    await fifo.ack(ids[0])
    await fifo.ack(ids[1])
    assert await fifo.claim_ids(10) == ids[2:]


async def test_groups_proceed_in_parallel_oldest_head_first(fifo: Queue, clock: Any) -> None:
    ids = await publish_groups(fifo, "ab")
    clock.advance(1)
    more = await publish_groups(fifo, "c")
    assert await fifo.claim_ids(1) == ids["a"]
    assert await fifo.claim_ids(1) == ids["b"]
    assert await fifo.claim_ids(1) == more["c"]


async def test_redrive_puts_a_dead_letter_back_in_its_group(make_queue: MakeQueue) -> None:
    q = await make_queue("once", type="fifo", max_retries=0)
    ids = await publish_groups(q, "aa")
    [first] = await q.claim_ids(1)
    await q.nack(first, requeue=False)
    [second] = await q.claim_ids(1)
    assert await q.redrive(first) == 1
    assert await q.claim_ids(10) == []  # second is still in flight
    await q.ack(second)
    assert await q.claim_ids(10) == [first] == ids["a"][:1]


async def test_fifo_ack_checks_still_apply(fifo: Queue) -> None:
    ids = await publish_groups(fifo, "aa")
    with pytest.raises(errors.LeaseExpired):
        await fifo.ack(ids["a"][1])
