"""Request validation and the error shape: wrong types, malformed JSON, unknown fields, payload and batch
limits, publish/consume/ack/nack rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from apikit import MakeQueue, assert_error

from broker.schemas import rfc3339

KIB = 1024


@pytest.fixture
async def jobs(make_queue: MakeQueue) -> str:
    await make_queue("jobs", message_retention_days=1)
    return "jobs"


async def stats(api: Any, queue: str = "jobs") -> tuple[int, int, int]:
    s = await api.ok("GET", f"/v1/queue/stats/{queue}")
    return s["available"], s["in_flight"], s["delayed"]


async def test_request_id_is_echoed_or_made_up(api: Any) -> None:
    r = await api.get("/v1/queue/get/nope", headers={"X-Request-Id": "trace-123"})
    assert assert_error(r, 404, "QUEUE_NOT_FOUND")["request_id"] == "trace-123"
    r = await api.get("/v1/queue/get/nope", headers={"X-Request-Id": "bad id with spaces"})
    assert assert_error(r, 404, "QUEUE_NOT_FOUND")["request_id"] != "bad id with spaces"
    ok = await api.get("/v1/queue/list")
    assert ok.status_code == 200 and ok.headers["x-request-id"]


@pytest.mark.parametrize("body", [b"{", b"not json", b'{"queue": "jobs",}', b"[1, 2]", b'"text"', b"\xff\xfe"])
async def test_malformed_json_is_400(api: Any, jobs: str, body: bytes) -> None:
    r = await api.request("POST", "/v1/queue/publish", content=body, headers={"Content-Type": "application/json"})
    assert_error(r, 400, "VALIDATION_ERROR")
    assert await stats(api) == (0, 0, 0)


async def test_unknown_fields_are_ignored(api: Any, jobs: str) -> None:
    mid = (await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1, "future_option": {"x": 1}}))
    [m] = (await api.ok("POST", "/v1/queue/consume", {"queue": "jobs", "colour": "blue"}))["messages"]
    assert m["message_id"] == mid["message_id"]
    record = await api.ok("POST", "/v1/queue/create", {"name": "more", "tags": ["a"]})
    assert record["queue"] == "more"


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/queue/publish", {"queue": "jobs", "payload": 1, "delay_seconds": "5"}, "delay_seconds"),
    ("/v1/queue/publish", {"queue": "jobs", "payload": 1, "priority": 1.5}, "priority"),
    ("/v1/queue/publish", {"queue": "jobs", "payload": 1, "priority": "high"}, "priority"),
    ("/v1/queue/publish", {"queue": "jobs", "payload": 1, "group_id": 5}, "group_id"),
    ("/v1/queue/publish", {"queue": "jobs", "payload": 1, "idempotency_key": 5}, "idempotency_key"),
    ("/v1/queue/publish", {"queue": 5, "payload": 1}, "queue"),
    ("/v1/queue/publish", {"payload": 1}, "queue"),
    ("/v1/queue/publish", {"queue": "jobs"}, "payload"),
    ("/v1/queue/publish_batch", {"queue": "jobs", "messages": {"payload": 1}}, "messages"),
    ("/v1/queue/publish_batch", {"queue": "jobs", "messages": [{"payload": 1}, 7]}, "messages[1]"),
    ("/v1/queue/publish_batch", {"queue": "jobs"}, "messages"),
    ("/v1/queue/consume", {"queue": "jobs", "max_messages": "2"}, "max_messages"),
    ("/v1/queue/consume", {"queue": "jobs", "wait_seconds": True}, "wait_seconds"),
    ("/v1/queue/ack", {"queue": "jobs", "message_id": 5}, "message_id"),
    ("/v1/queue/ack", {"queue": "jobs"}, "message_id"),
    ("/v1/queue/nack", {"queue": "jobs", "message_id": "x", "requeue": "false"}, "requeue"),
    ("/v1/queue/dlq/redrive/jobs", {"max_messages": "3"}, "max_messages"),
    ("/v1/queue/dlq/redrive/jobs", {"since": "yesterday"}, "since"),
])
async def test_wrong_types_name_the_field(api: Any, jobs: str, path: str, body: dict[str, Any], field: str) -> None:
    assert_error(await api.post(path, body), 400, "VALIDATION_ERROR", field)


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/queue/publish", {"queue": "jobs", "payload": 1, "priority": -1}, "priority"),
    ("/v1/queue/publish", {"queue": "jobs", "payload": 1, "priority": 10}, "priority"),
    ("/v1/queue/publish", {"queue": "jobs", "payload": 1, "delay_seconds": -1}, "delay_seconds"),
    ("/v1/queue/publish", {"queue": "jobs", "payload": 1, "delay_seconds": 86400}, "delay_seconds"),
    ("/v1/queue/publish", {"queue": "jobs", "payload": 1, "group_id": ""}, "group_id"),
    ("/v1/queue/publish", {"queue": "jobs", "payload": 1, "group_id": "a\nb"}, "group_id"),
    ("/v1/queue/publish", {"queue": "jobs", "payload": 1, "group_id": "g\n"}, "group_id"),
    ("/v1/queue/publish", {"queue": "jobs", "payload": 1, "idempotency_key": ""}, "idempotency_key"),
    ("/v1/queue/consume", {"queue": "jobs", "max_messages": 0}, "max_messages"),
    ("/v1/queue/consume", {"queue": "jobs", "max_messages": 101}, "max_messages"),
    ("/v1/queue/consume", {"queue": "jobs", "wait_seconds": 21}, "wait_seconds"),
    ("/v1/queue/consume", {"queue": "jobs", "wait_seconds": -1}, "wait_seconds"),
    ("/v1/queue/consume", {"queue": "jobs", "visibility_timeout": 43201}, "visibility_timeout"),
    ("/v1/queue/nack", {"queue": "jobs", "message_id": "x", "delay_seconds": -1}, "delay_seconds"),
    ("/v1/queue/dlq/redrive/jobs", {"max_messages": 0}, "max_messages"),
])
async def test_out_of_range_values(api: Any, jobs: str, path: str, body: dict[str, Any], field: str) -> None:
    assert_error(await api.post(path, body), 400, "VALIDATION_ERROR", field)
    assert await stats(api) == (0, 0, 0)


async def test_priority_is_validated_on_queues_without_priority(api: Any, jobs: str) -> None:
    assert not (await api.ok("GET", "/v1/queue/get/jobs"))["enable_priority"]
    assert_error(await api.post("/v1/queue/publish", {"queue": "jobs", "payload": 1, "priority": 10}), 400,
                 "VALIDATION_ERROR", "priority")
    await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1, "priority": 9})


async def test_delay_up_to_the_retention_period(api: Any, jobs: str) -> None:
    await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1, "delay_seconds": 86399.999})
    await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1, "delay_seconds": 3600})  # no 15 min cap
    assert await stats(api) == (0, 0, 2)


@pytest.mark.parametrize("payload", [{"a": 1}, [1, 2], "text", 0, False, 1.5, {"nested": {"deep": [None]}}])
async def test_any_json_payload_but_null(api: Any, jobs: str, payload: Any) -> None:
    await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": payload})
    [m] = (await api.ok("POST", "/v1/queue/consume", {"queue": "jobs"}))["messages"]
    assert m["payload"] == payload


async def test_null_payload_is_400(api: Any, jobs: str) -> None:
    assert_error(await api.post("/v1/queue/publish", {"queue": "jobs", "payload": None}), 400, "VALIDATION_ERROR",
                 "payload")
    r = await api.post("/v1/queue/publish_batch", {"queue": "jobs", "messages": [{"payload": 1}, {"payload": None}]})
    assert_error(r, 400, "VALIDATION_ERROR", "messages[1].payload")
    assert await stats(api) == (0, 0, 0)


def payload_of_compact_size(size: int) -> str:
    """A JSON string whose compact encoding is exactly ``size`` bytes."""
    return "x" * (size - 2)


async def test_payload_limit_is_256_kib_as_compact_json(api: Any, jobs: str) -> None:
    at_limit = payload_of_compact_size(256 * KIB)
    await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": at_limit})
    r = await api.post("/v1/queue/publish", {"queue": "jobs", "payload": payload_of_compact_size(256 * KIB + 1)})
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    # Whitespace in the request does not count: only the compact form of the payload does.
    spaced = json.dumps({"queue": "jobs", "payload": [1] * (60 * KIB)}, indent=8).encode()
    assert len(spaced) > 256 * KIB
    r = await api.request("POST", "/v1/queue/publish", content=spaced, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert await stats(api) == (2, 0, 0)


async def test_batch_item_too_large_is_413_and_stores_nothing(api: Any, jobs: str) -> None:
    r = await api.post("/v1/queue/publish_batch", {"queue": "jobs", "messages": [
        {"payload": 1}, {"payload": payload_of_compact_size(256 * KIB + 1)}]})
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert await stats(api) == (0, 0, 0)


async def test_batch_limits(api: Any, jobs: str) -> None:
    assert await api.ok("POST", "/v1/queue/publish_batch", {"queue": "jobs", "messages": []}) == {"message_ids": []}
    r = await api.post("/v1/queue/publish_batch", {"queue": "jobs", "messages": [{"payload": i} for i in range(1001)]})
    assert_error(r, 400, "VALIDATION_ERROR", "messages")
    assert await stats(api) == (0, 0, 0)
    reply = await api.ok("POST", "/v1/queue/publish_batch",
                         {"queue": "jobs", "messages": [{"payload": i} for i in range(1000)]})
    assert len(reply["message_ids"]) == len(set(reply["message_ids"])) == 1000
    consumed = await api.ok("POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 100})
    assert [m["message_id"] for m in consumed["messages"]] == reply["message_ids"][:100]
    assert [m["payload"] for m in consumed["messages"]] == list(range(100))


async def test_batch_over_4_mib_is_413(api: Any, jobs: str) -> None:
    item = {"payload": payload_of_compact_size(200 * KIB)}
    r = await api.post("/v1/queue/publish_batch", {"queue": "jobs", "messages": [item] * 21})
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert await stats(api) == (0, 0, 0)


@pytest.mark.parametrize(("item", "field"), [
    ({"payload": 1, "priority": 10}, "messages[2].priority"),
    ({"payload": 1, "delay_seconds": 86400}, "messages[2].delay_seconds"),
    ({"payload": 1, "delay_seconds": "1"}, "messages[2].delay_seconds"),
    ({"payload": 1, "group_id": ""}, "messages[2].group_id"),
    ({"priority": 1}, "messages[2].payload"),
])
async def test_one_invalid_batch_item_stores_nothing(api: Any, jobs: str, item: dict[str, Any], field: str) -> None:
    messages = [{"payload": 0}, {"payload": 1, "idempotency_key": "k"}, item, {"payload": 3}]
    r = await api.post("/v1/queue/publish_batch", {"queue": "jobs", "messages": messages})
    assert_error(r, 400, "VALIDATION_ERROR", field)
    assert await stats(api) == (0, 0, 0)
    # Nothing was stored under the valid item's key either.
    ok = await api.ok("POST", "/v1/queue/publish_batch", {"queue": "jobs", "messages": [
        {"payload": "different", "idempotency_key": "k"}]})
    assert len(ok["message_ids"]) == 1


async def test_publish_to_a_missing_queue(api: Any) -> None:
    assert_error(await api.post("/v1/queue/publish", {"queue": "nope", "payload": 1}), 404, "QUEUE_NOT_FOUND",
                 "queue")
    assert_error(await api.post("/v1/queue/publish_batch", {"queue": "nope", "messages": []}), 404, "QUEUE_NOT_FOUND")
    assert_error(await api.post("/v1/queue/consume", {"queue": "nope"}), 404, "QUEUE_NOT_FOUND")


async def test_consume_defaults_to_one_message_and_the_queue_visibility(api: Any, make_queue: MakeQueue,
                                                                        clock: Any) -> None:
    await make_queue("jobs", visibility_timeout_default=45)
    for i in range(3):
        await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": i})
    [m] = (await api.ok("POST", "/v1/queue/consume", {"queue": "jobs"}))["messages"]
    assert m["payload"] == 0
    assert m["lease_expires_at"] == rfc3339(clock() + 45_000)
    assert len((await api.ok("POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 100}))["messages"]) == 2


async def test_ack_and_nack_errors(api: Any, jobs: str, clock: Any) -> None:
    for i in range(2):
        await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": i})
    first, _ = (await api.ok("POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 2,
                                                            "visibility_timeout": 10}))["messages"]
    for path in ("/v1/queue/ack", "/v1/queue/nack"):
        assert_error(await api.post(path, {"queue": "jobs", "message_id": "nope"}), 404, "MESSAGE_NOT_FOUND")
        assert_error(await api.post(path, {"queue": "jobs", "message_id": first["message_id"], "receipt": "x.1"}),
                     409, "LEASE_EXPIRED", "receipt")
    await api.ok("POST", "/v1/queue/ack", {"queue": "jobs", "message_id": first["message_id"]})
    assert_error(await api.post("/v1/queue/ack", {"queue": "jobs", "message_id": first["message_id"]}), 404,
                 "MESSAGE_NOT_FOUND")
    clock.advance(10)
    [again] = (await api.ok("POST", "/v1/queue/consume", {"queue": "jobs"}))["messages"]
    assert again["attempts"] == 2


async def test_nack_delay(api: Any, jobs: str, clock: Any) -> None:
    mid = (await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1}))["message_id"]
    await api.ok("POST", "/v1/queue/consume", {"queue": "jobs"})
    reply = await api.ok("POST", "/v1/queue/nack", {"queue": "jobs", "message_id": mid, "delay_seconds": 2.5})
    assert reply["requeued"] is True
    assert await stats(api) == (0, 0, 1)
    clock.advance(2.499)
    assert (await api.ok("POST", "/v1/queue/consume", {"queue": "jobs"}))["messages"] == []
    clock.advance(0.001)
    [m] = (await api.ok("POST", "/v1/queue/consume", {"queue": "jobs"}))["messages"]
    assert m["message_id"] == mid


async def test_redrive_since_and_single_message(api: Any, make_queue: MakeQueue, clock: Any) -> None:
    await make_queue("jobs", max_retries=0)
    ids = []
    for i in range(3):
        mid = (await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": i}))["message_id"]
        await api.ok("POST", "/v1/queue/consume", {"queue": "jobs"})
        await api.ok("POST", "/v1/queue/nack", {"queue": "jobs", "message_id": mid})
        ids.append(mid)
        clock.advance(1)
    since = rfc3339(clock() - 2000)  # the 2nd and 3rd
    assert await api.ok("POST", "/v1/queue/dlq/redrive/jobs", {"since": since, "max_messages": 1}) == {
        "queue": "jobs", "redriven": 1}
    listed = await api.ok("GET", "/v1/queue/dlq/list/jobs")
    assert [d["message_id"] for d in listed["items"]] == [ids[0], ids[2]]
    assert await api.ok("POST", "/v1/queue/dlq/redrive/jobs", {"message_id": ids[0]}) == {"queue": "jobs",
                                                                                          "redriven": 1}
    assert_error(await api.post("/v1/queue/dlq/redrive/jobs", {"message_id": ids[0]}), 404, "MESSAGE_NOT_FOUND")
    assert await api.ok("POST", "/v1/queue/dlq/redrive/jobs") == {"queue": "jobs", "redriven": 1}


async def test_dlq_list_pagination(api: Any, make_queue: MakeQueue, clock: Any) -> None:
    await make_queue("jobs", max_retries=0)
    ids = []
    for i in range(5):
        mid = (await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": i}))["message_id"]
        await api.ok("POST", "/v1/queue/consume", {"queue": "jobs"})
        await api.ok("POST", "/v1/queue/nack", {"queue": "jobs", "message_id": mid, "requeue": False})
        ids.append(mid)
        clock.advance(0.001)
    seen: list[str] = []
    cursor = None
    while True:
        page = await api.ok("GET", "/v1/queue/dlq/list/jobs?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        seen += [d["message_id"] for d in page["items"]]
        if "next_cursor" not in page:
            break
        cursor = page["next_cursor"]
    assert seen == ids
    for query in ("limit=0", "limit=1001", "cursor=bm9wZQ", "cursor=%%%"):
        assert_error(await api.get(f"/v1/queue/dlq/list/jobs?{query}"), 400, "VALIDATION_ERROR",
                     query.split("=")[0])
