"""Idempotency keys on every route that takes one: the same request returns the first successful response
and changes nothing; a different request is 409; a failed request stores nothing; concurrent duplicates
have one effect; keys are scoped to the capability and the project."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from apikit import MakeQueue, assert_error

from broker.store.keys import ProjectKeys


async def stats(api: Any, queue: str = "jobs") -> dict[str, Any]:
    reply: dict[str, Any] = await api.ok("GET", f"/v1/queue/stats/{queue}")
    return reply


async def reused(api: Any, method: str, path: str, body: dict[str, Any]) -> None:
    assert_error(await api.request(method, path, body), 409, "IDEMPOTENCY_KEY_REUSED", "idempotency_key")


async def test_publish(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs")
    body = {"queue": "jobs", "payload": {"a": 1}, "idempotency_key": "k"}
    first = await api.ok("POST", "/v1/queue/publish", body)
    assert await api.ok("POST", "/v1/queue/publish", body) == first
    assert (await stats(api))["available"] == 1
    await reused(api, "POST", "/v1/queue/publish", {**body, "payload": {"a": 2}})
    await reused(api, "POST", "/v1/queue/publish", {**body, "delay_seconds": 1})
    assert (await stats(api))["available"] == 1


async def test_record_lives_24_hours(api: Any, make_queue: MakeQueue, redis_client: Any) -> None:
    await make_queue("jobs")
    await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1, "idempotency_key": "k"})
    ttl = await redis_client.pttl(ProjectKeys(api.project).idempotency("queue.publish", "k"))
    assert 86_400_000 - 60_000 < ttl <= 86_400_000


async def test_failed_publish_can_be_retried_with_the_same_key(api: Any, make_queue: MakeQueue) -> None:
    body = {"queue": "jobs", "payload": 1, "idempotency_key": "k"}
    assert_error(await api.post("/v1/queue/publish", body), 404, "QUEUE_NOT_FOUND")
    await make_queue("jobs")
    different = {**body, "payload": 2}  # the failed request left no record: not a reuse
    first = await api.ok("POST", "/v1/queue/publish", different)
    assert await api.ok("POST", "/v1/queue/publish", different) == first


async def test_publish_batch_request_and_message_keys(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs")
    body = {"queue": "jobs", "idempotency_key": "req", "messages": [
        {"payload": 1, "idempotency_key": "m1"}, {"payload": 2}]}
    first = await api.ok("POST", "/v1/queue/publish_batch", body)
    assert await api.ok("POST", "/v1/queue/publish_batch", body) == first
    await reused(api, "POST", "/v1/queue/publish_batch", {**body, "messages": [{"payload": 1}]})
    # A message key is honoured across requests (and by single publish, whose key names its one message).
    later = await api.ok("POST", "/v1/queue/publish_batch", {"queue": "jobs", "messages": [
        {"payload": 3}, {"payload": 1, "idempotency_key": "m1"}]})
    assert later["message_ids"][1] == first["message_ids"][0]
    single = await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1, "idempotency_key": "m1"})
    assert single["message_id"] == first["message_ids"][0]
    assert (await stats(api))["available"] == 3
    r = await api.post("/v1/queue/publish_batch", {"queue": "jobs", "messages": [
        {"payload": 9, "idempotency_key": "m1"}]})
    assert_error(r, 409, "IDEMPOTENCY_KEY_REUSED", "messages[0].idempotency_key")


async def test_duplicate_message_keys_inside_one_batch(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs")
    reply = await api.ok("POST", "/v1/queue/publish_batch", {"queue": "jobs", "messages": [
        {"payload": 1, "idempotency_key": "d"}, {"payload": 2}, {"payload": 1, "idempotency_key": "d"}]})
    ids = reply["message_ids"]
    assert ids[0] == ids[2] != ids[1]
    assert (await stats(api))["available"] == 2
    r = await api.post("/v1/queue/publish_batch", {"queue": "jobs", "messages": [
        {"payload": 1, "idempotency_key": "e"}, {"payload": 2, "idempotency_key": "e"}]})
    assert_error(r, 409, "IDEMPOTENCY_KEY_REUSED", "messages[1].idempotency_key")
    assert (await stats(api))["available"] == 2


async def test_create(api: Any, make_queue: MakeQueue, clock: Any) -> None:
    body = {"name": "jobs", "max_retries": 3, "dead_letter_queue": "dead", "idempotency_key": "k"}
    assert_error(await api.post("/v1/queue/create", body), 404, "QUEUE_NOT_FOUND")  # stores nothing
    await make_queue("dead")
    first = await api.ok("POST", "/v1/queue/create", body)
    clock.advance(5)
    assert await api.ok("POST", "/v1/queue/create", body) == first
    await reused(api, "POST", "/v1/queue/create", {**body, "max_retries": 4})
    await reused(api, "POST", "/v1/queue/create", {**body, "name": "other"})


async def test_update_replays_the_first_response(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs")
    body = {"max_retries": 2, "idempotency_key": "k"}
    first = await api.ok("PATCH", "/v1/queue/update/jobs", body)
    await api.ok("PATCH", "/v1/queue/update/jobs", {"max_retries": 7})
    assert await api.ok("PATCH", "/v1/queue/update/jobs", body) == first
    assert (await api.ok("GET", "/v1/queue/get/jobs"))["max_retries"] == 7
    await reused(api, "PATCH", "/v1/queue/update/jobs", {**body, "max_retries": 3})
    await make_queue("other")
    await reused(api, "PATCH", "/v1/queue/update/other", body)


async def test_purge(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs")
    await make_queue("other")
    for i in range(2):
        await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": i})
    first = await api.ok("POST", "/v1/queue/purge/jobs", {"idempotency_key": "k"})
    assert first == {"queue": "jobs", "purged": 2}
    await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 3})
    assert await api.ok("POST", "/v1/queue/purge/jobs", {"idempotency_key": "k"}) == first
    assert (await stats(api))["available"] == 1
    await reused(api, "POST", "/v1/queue/purge/other", {"idempotency_key": "k"})


async def test_ack(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs")
    a = (await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1}))["message_id"]
    b = (await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 2}))["message_id"]
    body = {"queue": "jobs", "message_id": a, "idempotency_key": "k"}
    assert_error(await api.post("/v1/queue/ack", body), 409, "LEASE_EXPIRED")  # not leased yet: stores nothing
    await api.ok("POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 2})
    first = await api.ok("POST", "/v1/queue/ack", body)
    assert await api.ok("POST", "/v1/queue/ack", body) == first == {"message_id": a, "acked": True}
    await reused(api, "POST", "/v1/queue/ack", {**body, "message_id": b})
    assert (await stats(api))["in_flight"] == 1


async def test_ack_batch(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs")
    ids = [(await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": i}))["message_id"]
           for i in range(3)]
    await api.ok("POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 3})
    body = {"queue": "jobs", "messages": [{"message_id": i} for i in ids[:2]], "idempotency_key": "k"}
    first = await api.ok("POST", "/v1/queue/ack_batch", body)
    assert await api.ok("POST", "/v1/queue/ack_batch", body) == first
    await reused(api, "POST", "/v1/queue/ack_batch", {**body, "messages": [{"message_id": ids[2]}]})
    assert (await stats(api))["in_flight"] == 1


async def test_nack_replay_does_not_touch_the_next_lease(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs")
    mid = (await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1}))["message_id"]
    await api.ok("POST", "/v1/queue/consume", {"queue": "jobs"})
    body = {"queue": "jobs", "message_id": mid, "idempotency_key": "k"}
    first = await api.ok("POST", "/v1/queue/nack", body)
    [again] = (await api.ok("POST", "/v1/queue/consume", {"queue": "jobs"}))["messages"]
    assert again["attempts"] == 2
    assert await api.ok("POST", "/v1/queue/nack", body) == first
    assert (await stats(api))["in_flight"] == 1
    await reused(api, "POST", "/v1/queue/nack", {**body, "requeue": False})


async def test_redrive(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs", max_retries=0)

    async def kill() -> None:
        mid = (await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1}))["message_id"]
        await api.ok("POST", "/v1/queue/consume", {"queue": "jobs"})
        await api.ok("POST", "/v1/queue/nack", {"queue": "jobs", "message_id": mid})

    await kill()
    await kill()
    first = await api.ok("POST", "/v1/queue/dlq/redrive/jobs", {"idempotency_key": "k"})
    assert first == {"queue": "jobs", "redriven": 2}
    await kill_one_more(api)
    assert await api.ok("POST", "/v1/queue/dlq/redrive/jobs", {"idempotency_key": "k"}) == first
    assert (await stats(api))["dlq"] == 1
    await reused(api, "POST", "/v1/queue/dlq/redrive/jobs", {"idempotency_key": "k", "max_messages": 1})


async def kill_one_more(api: Any) -> None:
    """Dead-letter one more message of "jobs" (max_retries=0) while two redriven ones wait before it."""
    mid = (await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 2}))["message_id"]
    taken = (await api.ok("POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 3}))["messages"]
    for m in taken:
        if m["message_id"] == mid:
            await api.ok("POST", "/v1/queue/nack", {"queue": "jobs", "message_id": mid})
        else:
            await api.ok("POST", "/v1/queue/ack", {"queue": "jobs", "message_id": m["message_id"]})


async def test_keys_are_scoped_to_the_capability(api: Any, make_queue: MakeQueue) -> None:
    """One key on operations of different kinds: each is performed and answered as itself, not as a replay of
    another's answer (nor refused as a reuse of the key)."""
    await make_queue("jobs")
    mid = (await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1, "idempotency_key": "k"}))
    await api.ok("POST", "/v1/queue/consume", {"queue": "jobs"})
    acked = await api.ok("POST", "/v1/queue/ack", {"queue": "jobs", "message_id": mid["message_id"],
                                                   "idempotency_key": "k"})
    assert acked == {"message_id": mid["message_id"], "acked": True}
    await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 2})
    assert (await api.ok("POST", "/v1/queue/purge/jobs", {"idempotency_key": "k"}))["purged"] == 1
    created = await api.ok("POST", "/v1/queue/create", {"name": "k", "idempotency_key": "k"})
    assert created["queue"] == "k"
    stats = await api.ok("GET", "/v1/queue/stats/jobs")
    assert (stats["available"], stats["in_flight"]) == (0, 0)


async def test_keys_are_scoped_to_the_project(two_tenants: tuple[Any, Any]) -> None:
    a, b = two_tenants
    for api in (a, b):
        await api.ok("POST", "/v1/queue/create", {"name": "jobs"})
    await a.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1, "idempotency_key": "k"})
    await b.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 2, "idempotency_key": "k"})
    for api, payload in ((a, 1), (b, 2)):
        [m] = (await api.ok("POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 10}))["messages"]
        assert m["payload"] == payload


@pytest.mark.parametrize("route", ["publish", "publish_batch"])
async def test_concurrent_duplicates_have_one_effect(api: Any, make_queue: MakeQueue, route: str) -> None:
    await make_queue("jobs")
    if route == "publish":
        body: dict[str, Any] = {"queue": "jobs", "payload": {"a": 1}, "idempotency_key": "same"}
    else:
        body = {"queue": "jobs", "messages": [{"payload": 1}, {"payload": 2}], "idempotency_key": "same"}
    replies = await asyncio.gather(*(api.post(f"/v1/queue/{route}", body) for _ in range(20)))
    assert {r.status_code for r in replies} == {200}
    assert len({r.text for r in replies}) == 1
    assert (await stats(api))["available"] == (1 if route == "publish" else 2)


async def test_concurrent_creates_with_one_key(api: Any) -> None:
    body = {"name": "jobs", "idempotency_key": "same"}
    replies = await asyncio.gather(*(api.post("/v1/queue/create", body) for _ in range(20)))
    assert {r.status_code for r in replies} == {200}
    assert len({r.text for r in replies}) == 1
