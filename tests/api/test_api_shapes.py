"""The success shape of every route of the contract: exact field names and types (API.md, Objects)."""

from __future__ import annotations

from typing import Any

from apikit import QUEUE_STATS, MakeQueue, assert_dead_letter, assert_message, assert_record

from broker.schemas import rfc3339


async def test_queue_record_routes(api: Any, make_queue: MakeQueue, clock: Any) -> None:
    created = await make_queue("jobs")
    assert_record(created, queue="jobs", type="standard", dead_letter_queue=None, max_retries=5,
                  message_retention_days=4, visibility_timeout_default=30, enable_priority=False,
                  created_at=rfc3339(clock()))
    assert await api.ok("GET", "/v1/queue/get/jobs") == created
    listed = await api.ok("GET", "/v1/queue/list")
    assert listed == {"items": [created]}
    updated = await api.ok("PATCH", "/v1/queue/update/jobs", {"max_retries": 2})
    assert_record(updated, max_retries=2, created_at=created["created_at"])


async def test_stats_shape(api: Any, make_queue: MakeQueue, publish: Any, clock: Any) -> None:
    await make_queue("jobs")
    stats = await api.ok("GET", "/v1/queue/stats/jobs")
    assert stats == {"queue": "jobs", "available": 0, "in_flight": 0, "dlq": 0, "delayed": 0,
                     "oldest_age_seconds": None}
    await publish("jobs")
    clock.advance(3)
    stats = await api.ok("GET", "/v1/queue/stats/jobs")
    assert set(stats) == QUEUE_STATS
    assert (stats["available"], stats["oldest_age_seconds"]) == (1, 3)


async def test_message_routes(api: Any, make_queue: MakeQueue, clock: Any) -> None:
    await make_queue("jobs")
    published = await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": {"a": [1, "x"]}})
    assert set(published) == {"message_id"} and isinstance(published["message_id"], str)
    batch = await api.ok("POST", "/v1/queue/publish_batch",
                         {"queue": "jobs", "messages": [{"payload": "text"}, {"payload": 7, "priority": 3}]})
    assert set(batch) == {"message_ids"} and len(batch["message_ids"]) == 2
    consumed = await api.ok("POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 3,
                                                            "visibility_timeout": 60})
    assert set(consumed) == {"messages"}
    first, second, third = consumed["messages"]
    for m in consumed["messages"]:
        assert_message(m)
    assert (first["message_id"], first["payload"], first["group_id"]) == (published["message_id"], {"a": [1, "x"]},
                                                                          None)
    assert (second["payload"], third["payload"], third["priority"]) == ("text", 7, 3)
    assert first["lease_expires_at"] == rfc3339(clock() + 60_000)
    assert first["attempts"] == 1
    acked = await api.ok("POST", "/v1/queue/ack", {"queue": "jobs", "message_id": first["message_id"],
                                                   "receipt": first["receipt"]})
    assert acked == {"message_id": first["message_id"], "acked": True}
    nacked = await api.ok("POST", "/v1/queue/nack", {"queue": "jobs", "message_id": second["message_id"]})
    assert nacked == {"message_id": second["message_id"], "nacked": True, "requeued": True}
    nacked = await api.ok("POST", "/v1/queue/nack", {"queue": "jobs", "message_id": third["message_id"],
                                                     "requeue": False})
    assert nacked == {"message_id": third["message_id"], "nacked": True, "requeued": False}


async def test_dead_letter_routes(api: Any, make_queue: MakeQueue, publish: Any, consume: Any) -> None:
    await make_queue("dead")
    await make_queue("jobs", dead_letter_queue="dead", max_retries=0)
    mid = await publish("jobs", {"v": 1}, priority=2)
    await consume("jobs")
    await api.ok("POST", "/v1/queue/nack", {"queue": "jobs", "message_id": mid})
    listed = await api.ok("GET", "/v1/queue/dlq/list/jobs")
    assert set(listed) == {"items"}
    [item] = listed["items"]
    assert_dead_letter(item)
    assert (item["message_id"], item["payload"], item["priority"], item["reason"], item["source_queue"]) == (
        mid, {"v": 1}, 2, "max_retries", "jobs")
    assert await api.ok("GET", "/v1/queue/dlq/list/dead") == {"items": []}
    assert await api.ok("POST", "/v1/queue/dlq/redrive/jobs", {}) == {"queue": "jobs", "redriven": 1}
    assert await api.ok("POST", "/v1/queue/purge/jobs") == {"queue": "jobs", "purged": 1}
    assert await api.ok("DELETE", "/v1/queue/delete/jobs") == {"queue": "jobs", "deleted": True}
    assert await api.ok("DELETE", "/v1/queue/delete/jobs") == {"queue": "jobs", "deleted": False}


async def test_extension_routes(api: Any, make_queue: MakeQueue, publish: Any, consume: Any, clock: Any) -> None:
    await make_queue("jobs")
    a = await publish("jobs")
    b = await publish("jobs")
    first, second = await consume("jobs", max_messages=2)
    extended = await api.ok("POST", "/v1/queue/extend", {"queue": "jobs", "message_id": a, "visibility_timeout": 90})
    assert extended == {"message_id": a, "receipt": first["receipt"], "lease_expires_at": rfc3339(clock() + 90_000)}
    acked = await api.ok("POST", "/v1/queue/ack_batch", {"queue": "jobs", "messages": [
        {"message_id": a, "receipt": first["receipt"]}, {"message_id": b}]})
    assert acked == {"queue": "jobs", "acked": [a, b]}
    assert second["message_id"] == b

