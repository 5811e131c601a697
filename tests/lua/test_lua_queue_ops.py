"""Queue-level scripts: create/update/list, purge, delete, retention and stats."""

from __future__ import annotations

from typing import Any

import pytest
from scriptkit import MakeQueue, Queue, message
from support import project_keys

from broker import errors
from broker.schemas import CreateQueueRequest

DAY = 86400


async def queue_keys_in_redis(redis_client: Any, q: Queue) -> list[str]:
    return await project_keys(redis_client, q.project, f"q:{q.name}:*")


# --- create / update / list -----------------------------------------------------------------------
async def test_create_returns_existing_queue_with_the_same_config(store: Any, project: str, clock: Any) -> None:
    first, created = await store.create_queue(project, CreateQueueRequest(name="q", max_retries=3))
    clock.advance(5)
    again, created_again = await store.create_queue(project, CreateQueueRequest(name="q", max_retries=3))
    assert (created, created_again) == (True, False)
    assert again == first
    with pytest.raises(errors.QueueAlreadyExists):
        await store.create_queue(project, CreateQueueRequest(name="q", max_retries=4))


async def test_create_with_a_missing_dlq_creates_nothing(store: Any, project: str) -> None:
    with pytest.raises(errors.QueueNotFound) as missing:
        await store.create_queue(project, CreateQueueRequest(name="q", dead_letter_queue="nope"))
    assert missing.value.field == "dead_letter_queue"
    with pytest.raises(errors.QueueNotFound):
        await store.get_queue(project, "q")


async def test_update_changes_settings_and_dlq_references(store: Any, project: str, make_queue: MakeQueue) -> None:
    await make_queue("d1")
    await make_queue("d2")
    await make_queue("q", dead_letter_queue="d1")
    with pytest.raises(errors.QueueNotFound):
        await store.update_queue(project, "q", {"dlq": "nope"}, None, "")
    record = await store.update_queue(project, "q", {"dlq": "d2", "max_retries": 7, "priority": 1}, None, "")
    assert (record.dead_letter_queue, record.max_retries, record.enable_priority) == ("d2", 7, True)
    assert await store.delete_queue(project, "d1") is True
    with pytest.raises(errors.QueueInUse):
        await store.delete_queue(project, "d2")
    await store.update_queue(project, "q", {"dlq": ""}, None, "")
    assert await store.delete_queue(project, "d2") is True
    with pytest.raises(errors.QueueNotFound):
        await store.update_queue(project, "gone", {"max_retries": 1}, None, "")


async def test_list_pages_in_name_order(store: Any, project: str, make_queue: MakeQueue) -> None:
    for name in ("c", "a", "e", "b", "d"):
        await make_queue(name)
    page, more = await store.list_queues(project, "", 2)
    assert ([r.queue for r in page], more) == (["a", "b"], True)
    await store.delete_queue(project, "c")
    await make_queue("bb")
    page, more = await store.list_queues(project, "b", 2)
    assert ([r.queue for r in page], more) == (["bb", "d"], True)
    page, more = await store.list_queues(project, "d", 2)
    assert ([r.queue for r in page], more) == (["e"], False)


# --- purge ----------------------------------------------------------------------------------------
async def test_purge_counts_waiting_and_in_flight_but_keeps_dead_letters(make_queue: MakeQueue) -> None:
    q = await make_queue("p", max_retries=0)
    dead = await q.publish_one(0)
    await q.claim()
    await q.nack(dead)
    leased = await q.publish_one(1)
    await q.claim()
    await q.publish(2, 3)
    await q.publish_one(4, delay=60)
    assert await q.purge() == 4
    assert await q.counts() == (0, 0, 0, 1)
    assert await q.dlq_ids() == [dead]
    with pytest.raises(errors.MessageNotFound):
        await q.ack(leased)
    assert await q.purge() == 0


async def test_purge_applies_ended_leases_first(make_queue: MakeQueue, clock: Any) -> None:
    q = await make_queue("p", max_retries=0)
    last_try = await q.publish_one()
    await q.claim(visibility=5)
    await q.publish(1, 2)
    clock.advance(5)
    assert await q.purge() == 2
    assert await q.dlq_ids() == [last_try]


async def test_purge_resets_fifo_groups(make_queue: MakeQueue) -> None:
    q = await make_queue("f", type="fifo")
    await q.publish(message(group="g"), message(group="g"))
    await q.claim(1)
    assert await q.purge() == 2
    fresh = await q.publish_one(message(group="g"))
    assert await q.claim_ids() == [fresh]


async def test_purge_idempotency(queue: Queue) -> None:
    await queue.publish(1, 2)
    assert await queue.purge("k", "fp") == 2
    await queue.publish(3)
    assert await queue.purge("k", "fp") == 2
    assert await queue.counts() == (1, 0, 0, 0)
    with pytest.raises(errors.IdempotencyKeyReused):
        await queue.purge("k", "other")


async def test_purge_of_a_missing_queue(store: Any, project: str) -> None:
    with pytest.raises(errors.QueueNotFound):
        await store.purge(project, "nope", None, "")


# --- delete ---------------------------------------------------------------------------------------
async def test_delete_is_idempotent_and_discards_everything(queue: Queue, redis_client: Any) -> None:
    await queue.publish(1, 2)
    await queue.claim(1)
    assert await queue_keys_in_redis(redis_client, queue)
    assert await queue.store.delete_queue(queue.project, queue.name) is True
    assert await queue_keys_in_redis(redis_client, queue) == []
    assert await queue.store.delete_queue(queue.project, queue.name) is False
    page, _ = await queue.store.list_queues(queue.project, "", 10)
    assert page == []


async def test_delete_refused_while_named_as_dlq(store: Any, project: str, make_queue: MakeQueue) -> None:
    await make_queue("dead")
    await make_queue("a", dead_letter_queue="dead")
    await make_queue("b", dead_letter_queue="dead")
    with pytest.raises(errors.QueueInUse) as in_use:
        await store.delete_queue(project, "dead")
    assert "a, b" in in_use.value.message
    await store.delete_queue(project, "a")
    with pytest.raises(errors.QueueInUse):
        await store.delete_queue(project, "dead")
    await store.delete_queue(project, "b")
    assert await store.delete_queue(project, "dead") is True


async def test_deleting_a_former_dlq_unlists_the_letters_it_held(store: Any, make_queue: MakeQueue) -> None:
    await make_queue("old")
    await make_queue("new")
    source = await make_queue("source", dead_letter_queue="old", max_retries=0)
    await source.publish_one()
    [mid] = await source.claim_ids()
    await source.nack(mid)
    assert await source.dlq_ids() == [mid]
    await store.update_queue(source.project, "source", {"dlq": "new"}, None, "")
    assert await store.delete_queue(source.project, "old") is True
    assert await source.dlq() == []
    assert (await source.stats()).dlq == 0


# --- retention ------------------------------------------------------------------------------------
async def test_retention_deletes_waiting_leased_and_dead_messages(make_queue: MakeQueue, clock: Any) -> None:
    q = await make_queue("r", message_retention_days=1, max_retries=0)
    dead = await q.publish_one(0)
    await q.claim()
    await q.nack(dead)
    await q.publish_one(1)
    await q.publish_one(2, delay=DAY / 2)
    clock.advance(DAY - 2 * 3600)
    leased = await q.publish_one(3)  # younger: survives
    old_leased = await q.claim_ids(visibility=3 * 3600)
    assert len(old_leased) == 3 and leased in old_leased
    clock.advance(2 * 3600 - 0.001)
    assert await q.counts() == (0, 3, 0, 1)
    clock.advance(0.001)
    with pytest.raises(errors.MessageNotFound):  # past retention: gone, even before any sweep
        await q.ack(old_leased[0])
    assert await q.counts() == (0, 1, 0, 0)
    assert await q.dlq() == []
    assert await q.ack(leased) == [leased]


async def test_retention_in_a_named_dlq(make_queue: MakeQueue, clock: Any) -> None:
    await make_queue("dead", message_retention_days=2)
    source = await make_queue("source", dead_letter_queue="dead", max_retries=0, message_retention_days=4)
    mid = await source.publish_one()
    clock.advance(DAY)
    await source.claim()
    await source.nack(mid)
    clock.advance(DAY - 0.001)
    assert await source.dlq_ids() == [mid]
    clock.advance(0.001)  # two days after its first publish: past the DLQ's retention
    assert await source.dlq() == []
    assert (await source.stats()).dlq == 0


async def test_redriven_message_keeps_its_retention_deadline(make_queue: MakeQueue, clock: Any) -> None:
    q = await make_queue("r", message_retention_days=1, max_retries=0)
    mid = await q.publish_one()
    await q.claim()
    await q.nack(mid)
    clock.advance(DAY / 2)
    assert await q.redrive(mid) == 1
    clock.advance(DAY / 2)
    assert await q.claim_ids() == []
    assert await q.counts() == (0, 0, 0, 0)


# --- stats ----------------------------------------------------------------------------------------
async def test_stats_of_an_empty_queue(queue: Queue) -> None:
    stats = await queue.stats()
    assert (stats.queue, stats.available, stats.in_flight, stats.delayed, stats.dlq) == ("jobs", 0, 0, 0, 0)
    assert stats.oldest_age_seconds is None


async def test_oldest_age_counts_only_available_messages(make_queue: MakeQueue, clock: Any) -> None:
    q = await make_queue("s", enable_priority=True)
    low = await q.publish_one(message(priority=0))
    clock.advance(3)
    await q.publish_one(message(priority=9))
    await q.publish_one(message(priority=5, delay=100))
    clock.advance(2.5)
    assert (await q.stats()).oldest_age_seconds == 5
    got = await q.claim_ids(1)
    assert low not in got
    assert (await q.stats()).oldest_age_seconds == 5  # the high-priority one left; low is still oldest
    assert await q.claim_ids(1) == [low]
    stats = await q.stats()
    assert (stats.available, stats.in_flight, stats.delayed, stats.oldest_age_seconds) == (0, 2, 1, None)


async def test_expired_lease_counts_as_available_at_once(queue: Queue, clock: Any) -> None:
    await queue.publish_one()
    await queue.claim(visibility=2)
    clock.advance(2)
    stats = await queue.stats()
    assert (stats.available, stats.in_flight, stats.oldest_age_seconds) == (1, 0, 2)


async def test_stats_of_a_missing_queue(store: Any, project: str) -> None:
    with pytest.raises(errors.QueueNotFound):
        await store.stats(project, "nope")
