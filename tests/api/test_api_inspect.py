"""The inspection extensions (queue.peek, queue.message, queue.history, queue.overview): what they show, that
they change nothing (every key of the project, DUMP by DUMP, before and after), their limits and their
errors in the contract's shape. Auth and tenancy are checked with every route in test_api_routes.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from apikit import RFC3339, MakeQueue, assert_error
from support import changed_keys, project_snapshot

from broker.store.keys import ProjectKeys


async def fill(api: Any, make_queue: MakeQueue, clock: Any) -> dict[str, Any]:
    """Queue "jobs" (dead letters go to "dead") with available, delayed, in-flight and dead-lettered messages."""
    await make_queue("dead")
    await make_queue("jobs", dead_letter_queue="dead", max_retries=0)
    ids = [(await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": {"n": n}, "priority": n % 3}))
           ["message_id"] for n in range(5)]
    later = (await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": {"later": True},
                                                         "delay_seconds": 60}))["message_id"]
    leased = (await api.ok("POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 2}))["messages"]
    await api.ok("POST", "/v1/queue/nack", {"queue": "jobs", "message_id": leased[1]["message_id"],
                                            "receipt": leased[1]["receipt"], "requeue": False})
    return {"ids": ids, "later": later, "leased": leased[0], "dead": leased[1]["message_id"]}


async def peek_all(api: Any, state: str, limit: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = f"state={state}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        page = await api.ok("GET", f"/v1/queue/peek/jobs?{query}")
        assert page["queue"] == "jobs" and page["state"] == state
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def test_peek_lists_each_state_and_changes_nothing(api: Any, make_queue: MakeQueue, clock: Any,
                                                         redis_client: Any) -> None:
    world = await fill(api, make_queue, clock)
    before = await project_snapshot(redis_client, api.project)
    available = await peek_all(api, "available", 1)
    delayed = await peek_all(api, "delayed", 100)
    in_flight = await peek_all(api, "in_flight", 100)
    for message_id in [*world["ids"], world["later"], world["dead"]]:
        await api.ok("GET", f"/v1/queue/message/jobs/{message_id}")
    for window in ("1h", "24h"):
        await api.ok("GET", f"/v1/queue/history/jobs?window={window}")
    await api.ok("GET", "/v1/queue/overview")
    assert changed_keys(before, await project_snapshot(redis_client, api.project)) == []

    leased_id = world["leased"]["message_id"]
    assert {m["message_id"] for m in available} == set(world["ids"]) - {leased_id, world["dead"]}
    assert len(available) == 3  # one page of one at a time, each once
    assert [m["message_id"] for m in delayed] == [world["later"]]
    assert delayed[0]["payload"] == {"later": True} and delayed[0]["state"] == "delayed"
    assert delayed[0]["due_at"] > delayed[0]["enqueued_at"]
    [held] = in_flight
    assert held["message_id"] == leased_id and held["attempts"] == 1 and held["deliveries"] == 1
    assert held["lease_expires_at"] == world["leased"]["lease_expires_at"]
    assert "receipt" not in held
    for m in available:
        assert m["attempts"] == 0 and m["lease_expires_at"] is None and RFC3339.match(m["enqueued_at"])
        assert m["payload"] == {"n": world["ids"].index(m["message_id"])}
    # A consume afterwards gets the messages peek showed: nothing was leased by looking.
    taken = (await api.ok("POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 10}))["messages"]
    assert {m["message_id"] for m in taken} == {m["message_id"] for m in available}


async def test_peek_of_a_large_queue_pages_in_order(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs")
    ids: list[str] = []
    for start in range(0, 250, 50):
        batch = [{"payload": n} for n in range(start, start + 50)]
        reply = await api.ok("POST", "/v1/queue/publish_batch", {"queue": "jobs", "messages": batch})
        ids += [item["message_id"] for item in reply["messages"]] if "messages" in reply else reply["message_ids"]
    found = await peek_all(api, "available", 100)
    assert [m["message_id"] for m in found] == ids
    assert [m["payload"] for m in found] == list(range(250))


async def test_message_wherever_it_is(api: Any, make_queue: MakeQueue, clock: Any) -> None:
    world = await fill(api, make_queue, clock)
    waiting = await api.ok("GET", f"/v1/queue/message/jobs/{world['ids'][4]}")
    assert waiting["state"] == "available" and waiting["held_in"] == "jobs" and waiting["payload"] == {"n": 4}
    assert waiting["priority"] == 1 and waiting["dead_lettered_at"] is None
    held = await api.ok("GET", f"/v1/queue/message/jobs/{world['leased']['message_id']}")
    assert held["state"] == "in_flight" and held["lease_expires_at"] == world["leased"]["lease_expires_at"]
    assert (await api.ok("GET", f"/v1/queue/message/jobs/{world['later']}"))["state"] == "delayed"
    dead = await api.ok("GET", f"/v1/queue/message/jobs/{world['dead']}")
    assert dead["state"] == "dead_letter" and dead["held_in"] == "dead" and dead["queue"] == "jobs"
    assert dead["reason"] == "nack" and dead["source_queue"] == "jobs" and RFC3339.match(dead["dead_lettered_at"])
    # Held by "dead" as a waiting message of its own.
    in_dlq = await api.ok("GET", f"/v1/queue/message/dead/{world['dead']}")
    assert in_dlq["state"] == "available" and in_dlq["held_in"] == "dead"

    assert_error(await api.get("/v1/queue/message/jobs/0000000000000000000"), 404, "MESSAGE_NOT_FOUND", "message_id")
    assert_error(await api.get("/v1/queue/message/nope/0000000000000000000"), 404, "QUEUE_NOT_FOUND", "queue")
    assert_error(await api.get(f"/v1/queue/message/jobs/{'a' * 65}"), 400, "VALIDATION_ERROR", "message_id")


async def test_own_dead_letters_are_dead_letters(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs", max_retries=0)
    mid = (await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1}))["message_id"]
    [m] = (await api.ok("POST", "/v1/queue/consume", {"queue": "jobs"}))["messages"]
    await api.ok("POST", "/v1/queue/nack", {"queue": "jobs", "message_id": mid, "receipt": m["receipt"],
                                            "requeue": False})
    found = await api.ok("GET", f"/v1/queue/message/jobs/{mid}")
    assert found["state"] == "dead_letter" and found["held_in"] == "jobs" and found["deliveries"] == 1


async def test_history_counts_per_minute(api: Any, make_queue: MakeQueue, clock: Any, redis_client: Any) -> None:
    clock.ms = (clock.ms // 60_000) * 60_000 + 1_000  # the start of a minute
    await make_queue("jobs", max_retries=0)
    for n in range(3):
        await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": n})
    clock.advance(60)
    taken = (await api.ok("POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 2}))["messages"]
    await api.ok("POST", "/v1/queue/ack", {"queue": "jobs", "message_id": taken[0]["message_id"],
                                           "receipt": taken[0]["receipt"]})
    await api.ok("POST", "/v1/queue/nack", {"queue": "jobs", "message_id": taken[1]["message_id"],
                                            "receipt": taken[1]["receipt"], "requeue": False})
    clock.advance(180)
    hour = await api.ok("GET", "/v1/queue/history/jobs")
    assert hour["window"] == "1h" and len(hour["points"]) == 60
    last = hour["points"][-6:]
    assert [(p["published"], p["acked"], p["dead_lettered"]) for p in last] == [
        (0, 0, 0), (3, 0, 0), (0, 1, 1), (0, 0, 0), (0, 0, 0), (0, 0, 0)]
    # Depth: after the first change of each minute (1 after the first publish; 2 after the first ack), carried
    # over quiet minutes; the depth now (1 left) for the current minute; null before anything was kept.
    assert [p["depth"] for p in last] == [None, 1, 2, 2, 2, 1]
    assert all(RFC3339.match(p["minute"]) for p in hour["points"])
    day = await api.ok("GET", "/v1/queue/history/jobs?window=24h")
    assert len(day["points"]) == 1440 and day["points"][-6:] == last

    # A day later the old minutes are gone from Redis, not only from the answer.
    hist = ProjectKeys(api.project).queue("jobs").part("hist")
    assert await redis_client.hlen(hist) == 5 + 1  # minute 0: :p, :d; minute 1 (open): +a, +x, :d; and "last"
    clock.advance(86400)
    await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": "next day"})
    assert sorted(await redis_client.hkeys(hist)) == sorted(
        [f"{clock.ms // 60_000}+p".encode(), f"{clock.ms // 60_000}:d".encode(), b"last"])
    points = (await api.ok("GET", "/v1/queue/history/jobs?window=24h"))["points"]
    assert sum(p["published"] for p in points) == 1 and points[-1]["depth"] == 2


async def test_overview_pages_every_queue(api: Any, make_queue: MakeQueue) -> None:
    for n in range(5):
        await make_queue(f"q{n}", type="fifo" if n == 3 else "standard")
    await api.ok("POST", "/v1/queue/publish", {"queue": "q1", "payload": 1})
    names, cursor = [], None
    while True:
        page = await api.ok("GET", "/v1/queue/overview?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        names += [item["queue"] for item in page["items"]]
        if page["items"] and page["items"][0]["queue"] == "q1":
            assert page["items"][0]["available"] == 1 and page["items"][0]["published"] == 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert names == [f"q{n}" for n in range(5)]
    items = (await api.ok("GET", "/v1/queue/overview"))["items"]
    assert [i["type"] for i in items] == ["standard", "standard", "standard", "fifo", "standard"]
    assert items[1]["oldest_age_seconds"] == 0 and items[0]["oldest_age_seconds"] is None


async def test_overview_rates_come_from_the_history(api: Any, make_queue: MakeQueue, clock: Any) -> None:
    """published_per_minute and acked_per_minute: the last 5 minutes of the history, this one up to now, so
    the dashboard's first load shows them."""
    clock.ms = (clock.ms // 60_000) * 60_000 + 29_999  # 30 s into a minute
    await make_queue("rates")
    await api.ok("POST", "/v1/queue/publish_batch", {"queue": "rates", "messages": [{"payload": n} for n in range(9)]})

    async def rates() -> tuple[float, float]:
        [item] = [i for i in (await api.ok("GET", "/v1/queue/overview"))["items"] if i["queue"] == "rates"]
        return item["published_per_minute"], item["acked_per_minute"]

    assert await rates() == (2.0, 0.0)  # 9 over 4.5 minutes
    clock.advance(60)
    leased = (await api.ok("POST", "/v1/queue/consume", {"queue": "rates", "max_messages": 9}))["messages"]
    await api.ok("POST", "/v1/queue/ack_batch", {"queue": "rates", "messages": [
        {"message_id": m["message_id"], "receipt": m["receipt"]} for m in leased]})
    assert await rates() == (2.0, 2.0)
    clock.advance(240)  # the minute of the publishes falls out of the five
    assert await rates() == (0.0, 2.0)
    clock.advance(60)
    assert await rates() == (0.0, 0.0)


@pytest.mark.parametrize(("path", "field"), [
    ("/v1/queue/peek/jobs?state=dead", "state"),
    ("/v1/queue/peek/jobs?limit=0", "limit"),
    ("/v1/queue/peek/jobs?limit=101", "limit"),
    ("/v1/queue/peek/jobs?cursor=bm9wZQ", "cursor"),
    ("/v1/queue/peek/jobs?cursor=%%%", "cursor"),
    ("/v1/queue/history/jobs?window=7d", "window"),
    ("/v1/queue/overview?limit=1001", "limit"),
    ("/v1/queue/overview?cursor=Lg", "cursor"),
    ("/v1/queue/peek/bad.name", "queue"),
])
async def test_bad_parameters_are_400(api: Any, make_queue: MakeQueue, redis_client: Any, path: str,
                                      field: str) -> None:
    await make_queue("jobs")
    before = await project_snapshot(redis_client, api.project)
    assert_error(await api.get(path), 400, "VALIDATION_ERROR", field)
    assert changed_keys(before, await project_snapshot(redis_client, api.project)) == []


async def test_unknown_queue_is_404(api: Any) -> None:
    for path in ("/v1/queue/peek/nope", "/v1/queue/history/nope"):
        assert_error(await api.get(path), 404, "QUEUE_NOT_FOUND", "queue")


async def test_payloads_come_back_as_published(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs")
    payload = {"text": "é ✓ \u2028", "nested": [1, 2.5, None, {"a": "</script>"}]}
    await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": payload})
    response = await api.get("/v1/queue/peek/jobs")
    assert json.loads(response.content)["items"][0]["payload"] == payload


async def test_peek_follows_delivery_order_in_priority_and_fifo_queues(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("ranked", enable_priority=True)
    for priority in (0, 9, 5):
        await api.ok("POST", "/v1/queue/publish", {"queue": "ranked", "payload": priority, "priority": priority})
    page = await api.ok("GET", "/v1/queue/peek/ranked")
    assert [m["payload"] for m in page["items"]] == [9, 5, 0]
    await make_queue("lines", type="fifo")
    for n, group in enumerate(["a", "b", "a"]):
        await api.ok("POST", "/v1/queue/publish", {"queue": "lines", "payload": n, "group_id": group})
    items = (await api.ok("GET", "/v1/queue/peek/lines"))["items"]
    assert [(m["payload"], m["group_id"]) for m in items] == [(0, "a"), (1, "b"), (2, "a")]
    # Peeking a FIFO queue leased nothing and took no group's turn: a consume still gets them all.
    taken = (await api.ok("POST", "/v1/queue/consume", {"queue": "lines", "max_messages": 10}))["messages"]
    assert sorted(m["payload"] for m in taken) == [0, 1, 2]
