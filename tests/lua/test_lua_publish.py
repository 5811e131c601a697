"""publish.lua: single and batch publish, all-or-nothing validation, delays, idempotency."""

from __future__ import annotations

from typing import Any

import pytest
from scriptkit import MakeQueue, Queue, message

from broker import errors

DAY = 86400


async def stored_ids(redis_client: Any, q: Queue) -> set[str]:
    return {k.decode() for k in await redis_client.hkeys(q.keys.msgs)}


async def test_single_publish_returns_an_available_message(queue: Queue) -> None:
    mid = await queue.publish_one({"hello": "world"})
    assert await queue.counts() == (1, 0, 0, 0)
    [got] = await queue.claim()
    assert got.message_id == mid
    assert bytes(got.payload) == b'{"hello":"world"}'
    assert (got.priority, got.group_id, got.attempts) == (0, None, 1)


async def test_batch_returns_ids_in_order_and_ids_sort_by_publish_time(queue: Queue, clock: Any) -> None:
    first = await queue.publish(1, 2, 3)
    clock.advance(0.001)
    second = await queue.publish(4, 5)
    ids = first + second
    assert len(set(ids)) == 5
    assert ids == sorted(ids)
    assert await queue.claim_ids() == ids


async def test_empty_batch_is_a_no_op(queue: Queue, redis_client: Any) -> None:
    assert await queue.store.publish(queue.project, queue.name, [], batch=True) == []
    assert await stored_ids(redis_client, queue) == set()


async def test_publish_to_a_missing_queue_is_queue_not_found(store: Any, project: str) -> None:
    with pytest.raises(errors.QueueNotFound):
        await store.publish(project, "nope", [message()], batch=False)


async def test_delay_must_be_shorter_than_retention(make_queue: MakeQueue, redis_client: Any) -> None:
    q = await make_queue("short", message_retention_days=1)
    ok = await q.publish_one(0, delay=DAY - 0.001)
    with pytest.raises(errors.ValidationError) as single:
        await q.publish_one(0, delay=DAY)
    assert single.value.field == "delay_seconds"
    assert await stored_ids(redis_client, q) == {ok}


async def test_an_invalid_batch_item_stores_nothing(make_queue: MakeQueue, redis_client: Any) -> None:
    q = await make_queue("short", message_retention_days=1)
    seq_before = await redis_client.get(f"v1:{{{q.project}}}:seq")
    with pytest.raises(errors.ValidationError) as batch:
        await q.publish(message(key="k0"), message(), message(delay=DAY), message())
    assert batch.value.field == "messages[2].delay_seconds"
    assert await stored_ids(redis_client, q) == set()
    assert await redis_client.get(f"v1:{{{q.project}}}:seq") == seq_before
    # The idempotency key of the valid item was not consumed either.
    [again] = await q.publish(message({"other": 1}, key="k0"))
    assert await stored_ids(redis_client, q) == {again}


async def test_message_key_returns_the_first_id_and_stores_once(queue: Queue, redis_client: Any) -> None:
    first = await queue.publish_one(message({"a": 1}, key="k"))
    again = await queue.publish_one(message({"a": 1}, key="k"))
    assert again == first
    assert await stored_ids(redis_client, queue) == {first}
    with pytest.raises(errors.IdempotencyKeyReused) as reused:
        await queue.publish_one(message({"a": 2}, key="k"))
    assert reused.value.field == "idempotency_key"
    assert await stored_ids(redis_client, queue) == {first}


async def test_message_key_still_answers_after_the_message_was_acked(queue: Queue) -> None:
    first = await queue.publish_one(message({"a": 1}, key="k"))
    await queue.claim()
    await queue.ack(first)
    assert await queue.publish_one(message({"a": 1}, key="k")) == first
    assert await queue.counts() == (0, 0, 0, 0)


async def test_failed_publish_stores_no_idempotency_record(store: Any, project: str, make_queue: MakeQueue) -> None:
    with pytest.raises(errors.QueueNotFound):
        await store.publish(project, "later", [message({"a": 1}, key="k")], batch=False)
    q = await make_queue("later")
    mid = await q.publish_one(message({"a": 2}, key="k"))
    assert await q.claim_ids() == [mid]


async def test_duplicate_keys_inside_one_batch(queue: Queue, redis_client: Any) -> None:
    ids = await queue.publish(message({"a": 1}, key="k"), message({"b": 1}), message({"a": 1}, key="k"))
    assert ids[0] == ids[2] != ids[1]
    assert await stored_ids(redis_client, queue) == {ids[0], ids[1]}
    with pytest.raises(errors.IdempotencyKeyReused) as reused:
        await queue.publish(message({"c": 1}, key="j"), message({"c": 2}, key="j"))
    assert reused.value.field == "messages[1].idempotency_key"
    assert await stored_ids(redis_client, queue) == {ids[0], ids[1]}


async def test_batch_item_with_a_used_key_returns_the_earlier_id(queue: Queue, redis_client: Any) -> None:
    old = await queue.publish_one(message({"a": 1}, key="k"))
    ids = await queue.publish(message({"x": 1}), message({"a": 1}, key="k"))
    assert ids[1] == old
    assert len(await stored_ids(redis_client, queue)) == 2


async def test_request_key_of_a_batch(queue: Queue, redis_client: Any) -> None:
    pub = queue.store.publish
    items = [message({"a": 1}), message({"a": 2})]
    first = await pub(queue.project, queue.name, items, batch=True, idempotency_key="r", fp="fp1")
    again = await pub(queue.project, queue.name, items, batch=True, idempotency_key="r", fp="fp1")
    assert again == first
    assert len(await stored_ids(redis_client, queue)) == 2
    with pytest.raises(errors.IdempotencyKeyReused):
        await pub(queue.project, queue.name, items[:1], batch=True, idempotency_key="r", fp="fp2")
    assert len(await stored_ids(redis_client, queue)) == 2


async def test_request_key_scopes_single_and_batch_separately(queue: Queue) -> None:
    pub = queue.store.publish
    one = await pub(queue.project, queue.name, [message({"a": 1})], batch=False, idempotency_key="r", fp="x")
    many = await pub(queue.project, queue.name, [message({"a": 1})], batch=True, idempotency_key="r", fp="y")
    assert one != many
    assert (await queue.counts())[0] == 2
