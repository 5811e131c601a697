"""Dead letters: the own area, named dead-letter queues, dlq_list pagination, and redrive."""

from __future__ import annotations

from typing import Any

import pytest
from scriptkit import MakeQueue, Queue, message

from broker import errors


async def kill(q: Queue, *payloads: Any, clock: Any = None) -> list[str]:
    """Publish messages and dead-letter each at once (nack without requeue), 1 ms apart."""
    ids = []
    for payload in payloads:
        mid = await q.publish_one(payload)
        assert await q.claim_ids(1) == [mid]
        await q.nack(mid, requeue=False)
        ids.append(mid)
        if clock is not None:
            clock.advance(0.001)
    return ids


@pytest.fixture
async def pair(make_queue: MakeQueue) -> tuple[Queue, Queue]:
    """A source queue (max_retries=0) and its named dead-letter queue (max_retries=0)."""
    dead = await make_queue("dead", max_retries=0)
    source = await make_queue("source", dead_letter_queue="dead", max_retries=0)
    return source, dead


async def test_own_area_lists_and_counts_dead_letters(queue: Queue, clock: Any) -> None:
    ids = await kill(queue, 1, 2, 3, clock=clock)
    assert await queue.counts() == (0, 0, 0, 3)
    items = await queue.dlq()
    assert [d.message_id for d in items] == ids
    assert {(d.reason, d.source_queue) for d in items} == {("nack", "jobs")}
    assert await queue.claim_ids() == []


async def test_named_dlq_receives_consumable_messages(pair: tuple[Queue, Queue], clock: Any) -> None:
    source, dead = pair
    [mid] = await kill(source, {"x": 1})
    assert await source.counts() == (0, 0, 0, 1)
    assert await dead.counts() == (1, 0, 0, 0)
    [listed] = await source.dlq()
    assert (listed.message_id, listed.source_queue, listed.reason) == (mid, "source", "nack")
    assert await dead.dlq() == []
    [m] = await dead.claim()
    assert (m.message_id, bytes(m.payload), m.attempts) == (mid, b'{"x":1}', 1)
    # In flight in the DLQ: still a dead letter of the source.
    assert [d.message_id for d in await source.dlq()] == [mid]
    assert (await source.stats()).dlq == 1
    await dead.ack(mid)
    assert await source.dlq() == []
    assert await source.counts() == (0, 0, 0, 0)
    assert await dead.counts() == (0, 0, 0, 0)


async def test_dead_lettered_again_from_the_named_dlq(pair: tuple[Queue, Queue]) -> None:
    source, dead = pair
    [mid] = await kill(source, 1)
    assert await dead.claim_ids() == [mid]
    assert await dead.nack(mid) is False  # dead has max_retries=0 and no DLQ of its own
    assert await source.dlq() == []
    assert (await source.stats()).dlq == 0
    [again] = await dead.dlq()
    assert (again.message_id, again.source_queue, again.reason) == (mid, "dead", "max_retries")


async def test_max_retries_dead_letter_goes_to_named_dlq(make_queue: MakeQueue, clock: Any) -> None:
    dead = await make_queue("dead")
    source = await make_queue("source", dead_letter_queue="dead", max_retries=1)
    mid = await source.publish_one()
    for _ in range(2):
        assert await source.claim_ids(visibility=1) == [mid]
        clock.advance(1)
    assert await source.counts() == (0, 0, 0, 1)
    [listed] = await source.dlq()
    assert (listed.reason, listed.source_queue) == ("max_retries", "source")
    # The DLQ applies its own retry budget (max_retries=5): six deliveries there.
    for attempt in range(1, 7):
        [m] = await dead.claim(visibility=1)
        assert m.attempts == attempt
        clock.advance(1)
    assert await source.dlq() == []
    assert [d.reason for d in await dead.dlq()] == ["max_retries"]


async def test_dlq_list_paginates_oldest_first_with_a_stable_cursor(queue: Queue, clock: Any) -> None:
    ids = await kill(queue, *range(5), clock=clock)
    store, project = queue.store, queue.project
    page, cursor = await store.dlq_list(project, queue.name, None, 2)
    assert [d.message_id for d in page] == ids[:2] and cursor is not None
    # The listing changes between pages: listed letters leave (one comes back as the newest), one arrives.
    await queue.redrive(ids[0])
    await queue.redrive(ids[1])
    assert await queue.claim_ids() == ids[:2]
    await queue.ack(ids[1])
    await queue.nack(ids[0], requeue=False)
    clock.advance(0.001)
    newer = await kill(queue, 99, clock=clock)
    page, cursor = await store.dlq_list(project, queue.name, cursor, 2)
    assert [d.message_id for d in page] == ids[2:4] and cursor is not None
    page, cursor = await store.dlq_list(project, queue.name, cursor, 2)
    assert [d.message_id for d in page] == [ids[4], ids[0]] and cursor is not None
    page, cursor = await store.dlq_list(project, queue.name, cursor, 2)
    assert [d.message_id for d in page] == newer
    assert cursor is None


async def test_dlq_list_exact_page_has_no_cursor(queue: Queue, clock: Any) -> None:
    await kill(queue, 1, 2, clock=clock)
    page, cursor = await queue.store.dlq_list(queue.project, queue.name, None, 2)
    assert len(page) == 2 and cursor is None


async def test_dlq_list_of_a_missing_queue(store: Any, project: str) -> None:
    with pytest.raises(errors.QueueNotFound):
        await store.dlq_list(project, "nope", None, 10)


async def test_redrive_one_gives_a_fresh_retry_budget(make_queue: MakeQueue) -> None:
    q = await make_queue("r", max_retries=1)
    mid = await q.publish_one()
    await q.fail_until_dead(mid, 2)
    assert await q.dlq_ids() == [mid]
    assert await q.redrive(mid) == 1
    assert await q.dlq() == []
    assert await q.counts() == (1, 0, 0, 0)
    [m] = await q.claim()
    assert m.attempts == 1
    assert await q.nack(mid) is True  # a second delivery is allowed again
    await q.fail_until_dead(mid, 1)
    assert await q.dlq_ids() == [mid]


async def test_redrive_of_an_unknown_id(queue: Queue) -> None:
    live = await queue.publish_one()
    for mid in (live, "0000000000000000000"):
        with pytest.raises(errors.MessageNotFound):
            await queue.redrive(mid)


async def test_redrive_all_since_and_max(queue: Queue, clock: Any) -> None:
    ids = await kill(queue, *range(6), clock=clock)
    dead_at = {d.message_id: d.dead_lettered_at for d in await queue.dlq()}
    assert len(set(dead_at.values())) == 6
    since = clock() - 3  # the last three were dead-lettered at or after this ms
    assert await queue.redrive(since_ms=since, max_messages=2) == 2
    assert await queue.dlq_ids() == [*ids[:3], ids[5]]
    assert await queue.redrive(max_messages=1) == 1
    assert await queue.dlq_ids() == [*ids[1:3], ids[5]]
    assert await queue.redrive() == 3
    assert await queue.dlq() == []
    assert await queue.counts() == (6, 0, 0, 0)
    # Back in publish order (they keep their sequence).
    assert await queue.claim_ids() == ids


async def test_redrive_from_a_named_dlq(pair: tuple[Queue, Queue]) -> None:
    source, dead = pair
    ids = await kill(source, 1, 2)
    assert await source.redrive() == 2
    assert await dead.counts() == (0, 0, 0, 0)
    assert await source.counts() == (2, 0, 0, 0)
    assert await source.claim_ids() == ids


async def test_redrive_skips_dead_letters_in_flight_in_the_named_dlq(make_queue: MakeQueue, clock: Any) -> None:
    dead = await make_queue("dead", max_retries=1)
    source = await make_queue("source", dead_letter_queue="dead", max_retries=0)
    busy, idle = await kill(source, 1, 2)
    assert await dead.claim_ids(1, visibility=10) == [busy]
    assert await source.redrive() == 1
    with pytest.raises(errors.LeaseExpired, match="in flight"):  # named: told why it is not redriven
        await source.redrive(busy)
    assert await source.dlq_ids() == [busy]
    assert await source.claim_ids() == [idle]
    # Its lease in the DLQ ends (a failed delivery there, with a retry left): waiting again, so redriven.
    clock.advance(10)
    assert await source.redrive(busy) == 1
    assert await dead.counts() == (0, 0, 0, 0)
    [m] = await source.claim()
    assert (m.message_id, m.attempts) == (busy, 1)


@pytest.mark.parametrize("first_call", ["stats", "dlq_list", "redrive"])
async def test_letter_dead_lettered_again_by_a_lease_end_in_the_dlq(
    pair: tuple[Queue, Queue], clock: Any, first_call: str
) -> None:
    source, dead = pair
    [mid] = await kill(source, 1)
    assert await dead.claim_ids(visibility=10) == [mid]
    clock.advance(10)
    # No call on "dead" since: each of the source's calls applies the DLQ's ended lease first.
    if first_call == "stats":
        assert (await source.stats()).dlq == 0
    elif first_call == "dlq_list":
        assert await source.dlq() == []
    else:
        with pytest.raises(errors.MessageNotFound):
            await source.redrive(mid)
    assert await source.dlq() == []
    assert [(d.message_id, d.source_queue) for d in await dead.dlq()] == [(mid, "dead")]


async def test_redrive_finds_letters_in_a_dlq_named_earlier(make_queue: MakeQueue, store: Any) -> None:
    await make_queue("dead1")
    await make_queue("dead2")
    source = await make_queue("source", dead_letter_queue="dead1", max_retries=0)
    [mid] = await kill(source, 1)
    await store.update_queue(source.project, "source", {"dlq": "dead2"}, None, "")
    assert await source.dlq_ids() == [mid]
    assert await source.redrive(mid) == 1
    assert await source.claim_ids() == [mid]


async def test_redrive_idempotency(queue: Queue, clock: Any) -> None:
    await kill(queue, 1, 2, clock=clock)
    assert await queue.redrive(max_messages=1, idempotency_key="k", fp="a") == 1
    assert await queue.redrive(max_messages=1, idempotency_key="k", fp="a") == 1
    assert (await queue.stats()).dlq == 1
    with pytest.raises(errors.IdempotencyKeyReused):
        await queue.redrive(idempotency_key="k", fp="b")


async def test_purge_of_a_dlq_unlists_the_dead_letters_it_held(pair: tuple[Queue, Queue]) -> None:
    source, dead = pair
    await kill(source, 1, 2)
    assert await dead.purge() == 2
    assert await source.dlq() == []
    assert (await source.stats()).dlq == 0


async def test_source_dead_letters_keep_source_priority_and_group(make_queue: MakeQueue, clock: Any) -> None:
    dead = await make_queue("dead", type="fifo")
    source = await make_queue("source", type="fifo", dead_letter_queue="dead", max_retries=0)
    first, second = await source.publish(message({"v": 1}, group="g", priority=4), message({"v": 2}, group="g"))
    assert await source.claim_ids() == [first, second]
    await source.nack(second, requeue=False)
    clock.advance(0.001)
    await source.nack(first, requeue=False)
    assert await source.dlq_ids() == [second, first]  # oldest dead letter first
    listed = {d.message_id: d for d in await source.dlq()}
    assert (listed[first].group_id, listed[first].priority, bytes(listed[first].payload)) == ("g", 4, b'{"v":1}')
    # In the FIFO dead-letter queue they form group "g" again, in publish order.
    assert await dead.claim_ids(1) == [first]
    assert await dead.claim_ids() == []
    await dead.ack(first)
    assert await dead.claim_ids() == [second]
