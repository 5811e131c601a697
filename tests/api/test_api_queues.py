"""queue.create / get / list / update / delete / purge / stats through HTTP: defaults, ranges, names,
conflicts, pagination, and the path/body queue rule."""

from __future__ import annotations

from typing import Any

import pytest
from apikit import MakeQueue, assert_error, assert_record

DEFAULTS = {"type": "standard", "dead_letter_queue": None, "max_retries": 5, "message_retention_days": 4,
            "visibility_timeout_default": 30, "enable_priority": False}

RANGES = [
    ("max_retries", 0, 1000),
    ("message_retention_days", 1, 14),
    ("visibility_timeout_default", 0, 43200),
]


async def test_create_defaults(make_queue: MakeQueue) -> None:
    assert_record(await make_queue("jobs"), queue="jobs", **DEFAULTS)


async def test_create_with_every_setting(make_queue: MakeQueue) -> None:
    await make_queue("dead")
    record = await make_queue("jobs", type="fifo", dead_letter_queue="dead", max_retries=0, message_retention_days=14,
                              visibility_timeout_default=43200, enable_priority=True)
    assert_record(record, type="fifo", dead_letter_queue="dead", max_retries=0, message_retention_days=14,
                  visibility_timeout_default=43200, enable_priority=True)


@pytest.mark.parametrize(("field", "low", "high"), RANGES)
async def test_create_ranges(api: Any, field: str, low: int, high: int) -> None:
    for value in (low, high):
        record = await api.ok("POST", "/v1/queue/create", {"name": f"q{value}", field: value})
        assert record[field] == value
    for value in (low - 1, high + 1):
        r = await api.post("/v1/queue/create", {"name": "bad", field: value})
        assert_error(r, 400, "VALIDATION_ERROR", field)
    await api.ok("GET", f"/v1/queue/get/q{low}")
    assert_error(await api.get("/v1/queue/get/bad"), 404, "QUEUE_NOT_FOUND")


@pytest.mark.parametrize(("field", "value"), [
    ("type", "lifo"), ("type", None), ("max_retries", "5"), ("max_retries", 1.5), ("enable_priority", 1),
    ("enable_priority", "true"), ("message_retention_days", None), ("dead_letter_queue", 3), ("name", 7),
])
async def test_create_wrong_types(api: Any, field: str, value: Any) -> None:
    r = await api.post("/v1/queue/create", {"name": "jobs", field: value})
    assert_error(r, 400, "VALIDATION_ERROR", field)


@pytest.mark.parametrize("name", ["", "a" * 81, "a.b", "a b", "a/b", "a:b", "{x}", "q*", "jobs\n", "\njobs", "é"])
async def test_invalid_queue_names(api: Any, name: str) -> None:
    assert_error(await api.post("/v1/queue/create", {"name": name}), 400, "VALIDATION_ERROR", "name")
    assert_error(await api.post("/v1/queue/publish", {"queue": name, "payload": 1}), 400, "VALIDATION_ERROR", "queue")
    assert_error(await api.post("/v1/queue/create", {"name": "ok", "dead_letter_queue": name}), 400,
                 "VALIDATION_ERROR", "dead_letter_queue")


@pytest.mark.parametrize("name", ["a.b", "a%20b", "a:b", "%7Bx%7D", "jobs%0A", "a" * 81])
async def test_invalid_queue_names_in_paths(api: Any, name: str) -> None:
    for method, path in (("GET", "/v1/queue/get/"), ("GET", "/v1/queue/stats/"), ("DELETE", "/v1/queue/delete/"),
                         ("POST", "/v1/queue/purge/"), ("GET", "/v1/queue/dlq/list/")):
        assert_error(await api.request(method, path + name), 400, "VALIDATION_ERROR", "queue")


async def test_longest_name_and_every_character_class(make_queue: MakeQueue) -> None:
    name = "Az09_-" + "x" * 74
    assert (await make_queue(name))["queue"] == name


async def test_create_again_with_the_same_config_returns_it(api: Any, make_queue: MakeQueue, clock: Any) -> None:
    first = await make_queue("jobs", max_retries=5)
    clock.advance(10)
    # Omitted fields compare as their defaults, given ones as given.
    assert await api.ok("POST", "/v1/queue/create", {"name": "jobs"}) == first
    assert await api.ok("POST", "/v1/queue/create", {"name": "jobs", **DEFAULTS}) == first


@pytest.mark.parametrize(("field", "value"), [
    ("type", "fifo"), ("max_retries", 4), ("message_retention_days", 5), ("visibility_timeout_default", 31),
    ("enable_priority", True), ("dead_letter_queue", "other"),
])
async def test_create_with_a_different_config_conflicts(api: Any, make_queue: MakeQueue, field: str,
                                                        value: Any) -> None:
    await make_queue("other")
    first = await make_queue("jobs")
    r = await api.post("/v1/queue/create", {"name": "jobs", field: value})
    assert_error(r, 409, "QUEUE_ALREADY_EXISTS")
    assert await api.ok("GET", "/v1/queue/get/jobs") == first


async def test_dead_letter_queue_rules(api: Any, make_queue: MakeQueue) -> None:
    # Naming itself is checked first: 400 even though no such queue exists yet.
    assert_error(await api.post("/v1/queue/create", {"name": "jobs", "dead_letter_queue": "jobs"}), 400,
                 "VALIDATION_ERROR", "dead_letter_queue")
    assert_error(await api.post("/v1/queue/create", {"name": "jobs", "dead_letter_queue": "missing"}), 404,
                 "QUEUE_NOT_FOUND", "dead_letter_queue")
    assert_error(await api.get("/v1/queue/get/jobs"), 404, "QUEUE_NOT_FOUND")
    await make_queue("dead")
    assert (await make_queue("jobs", dead_letter_queue="dead"))["dead_letter_queue"] == "dead"


async def test_get_missing_queue(api: Any) -> None:
    assert_error(await api.get("/v1/queue/get/nope"), 404, "QUEUE_NOT_FOUND")
    assert_error(await api.get("/v1/queue/stats/nope"), 404, "QUEUE_NOT_FOUND")
    assert_error(await api.post("/v1/queue/purge/nope"), 404, "QUEUE_NOT_FOUND")
    assert_error(await api.get("/v1/queue/dlq/list/nope"), 404, "QUEUE_NOT_FOUND")
    assert_error(await api.post("/v1/queue/dlq/redrive/nope", {}), 404, "QUEUE_NOT_FOUND")
    assert_error(await api.request("PATCH", "/v1/queue/update/nope", {"max_retries": 1}), 404, "QUEUE_NOT_FOUND")


# --- list -----------------------------------------------------------------------------------------
async def list_all(api: Any, limit: int) -> list[str]:
    names: list[str] = []
    cursor = None
    while True:
        query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        page = await api.ok("GET", "/v1/queue/list" + query)
        assert len(page["items"]) <= limit
        names += [r["queue"] for r in page["items"]]
        if "next_cursor" not in page:
            return names
        cursor = page["next_cursor"]


async def test_list_pages_through_every_queue(api: Any, make_queue: MakeQueue) -> None:
    names = [f"q{i:03d}" for i in range(23)]
    for name in reversed(names):
        await make_queue(name)
    assert await list_all(api, 5) == names
    assert await list_all(api, 23) == names
    assert await list_all(api, 1000) == names
    default = await api.ok("GET", "/v1/queue/list")
    assert [r["queue"] for r in default["items"]] == names and "next_cursor" not in default


async def test_list_default_limit_is_100(api: Any, make_queue: MakeQueue) -> None:
    for i in range(101):
        await make_queue(f"q{i:03d}")
    page = await api.ok("GET", "/v1/queue/list")
    assert len(page["items"]) == 100 and page["next_cursor"]
    rest = await api.ok("GET", f"/v1/queue/list?cursor={page['next_cursor']}")
    assert [r["queue"] for r in rest["items"]] == ["q100"]


async def test_list_cursor_is_stable_while_queues_come_and_go(api: Any, make_queue: MakeQueue) -> None:
    for name in ("b", "d", "f", "h"):
        await make_queue(name)
    page = await api.ok("GET", "/v1/queue/list?limit=2")
    assert [r["queue"] for r in page["items"]] == ["b", "d"]
    await api.ok("DELETE", "/v1/queue/delete/d")  # the cursor's own queue disappears
    await make_queue("a")  # before the cursor: not seen on later pages
    await make_queue("e")  # after it: seen
    rest = await api.ok("GET", f"/v1/queue/list?limit=10&cursor={page['next_cursor']}")
    assert [r["queue"] for r in rest["items"]] == ["e", "f", "h"]


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=-1", "limit=abc", "limit=1.5", "cursor=%25%25%25",
                                   "cursor=Li4v"])
async def test_list_rejects_bad_paging(api: Any, query: str) -> None:
    field = query.split("=")[0]
    assert_error(await api.get(f"/v1/queue/list?{query}"), 400, "VALIDATION_ERROR", field)


# --- update ---------------------------------------------------------------------------------------
async def test_update_changes_only_given_fields(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("dead")
    first = await make_queue("jobs", max_retries=3)
    record = await api.ok("PATCH", "/v1/queue/update/jobs", {"dead_letter_queue": "dead", "enable_priority": True,
                                                             "message_retention_days": 7})
    assert record == {**first, "dead_letter_queue": "dead", "enable_priority": True, "message_retention_days": 7}
    record = await api.ok("PATCH", "/v1/queue/update/jobs", {"dead_letter_queue": None,
                                                             "visibility_timeout_default": 0})
    assert (record["dead_letter_queue"], record["visibility_timeout_default"], record["max_retries"]) == (None, 0, 3)
    assert await api.ok("GET", "/v1/queue/get/jobs") == record
    # "dead" is no longer anyone's DLQ.
    assert await api.ok("DELETE", "/v1/queue/delete/dead") == {"queue": "dead", "deleted": True}


async def test_update_validation(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("jobs")
    patch = "/v1/queue/update/jobs"
    for body, status, code, field in [
        ({"max_retries": 1001}, 400, "VALIDATION_ERROR", "max_retries"),
        ({"message_retention_days": 0}, 400, "VALIDATION_ERROR", "message_retention_days"),
        ({"visibility_timeout_default": 43201}, 400, "VALIDATION_ERROR", "visibility_timeout_default"),
        ({"enable_priority": "yes"}, 400, "VALIDATION_ERROR", "enable_priority"),
        ({"dead_letter_queue": "jobs"}, 400, "VALIDATION_ERROR", "dead_letter_queue"),
        ({"dead_letter_queue": "missing"}, 404, "QUEUE_NOT_FOUND", "dead_letter_queue"),
        ({"queue": "other", "max_retries": 1}, 400, "VALIDATION_ERROR", "queue"),
    ]:
        assert_error(await api.request("PATCH", patch, body), status, code, field)
    assert (await api.ok("GET", "/v1/queue/get/jobs"))["max_retries"] == 5
    assert (await api.ok("PATCH", patch, {"queue": "jobs", "max_retries": 1}))["max_retries"] == 1


# --- delete and purge -----------------------------------------------------------------------------
async def test_delete_discards_messages_and_is_idempotent(api: Any, make_queue: MakeQueue, publish: Any) -> None:
    await make_queue("jobs")
    await publish("jobs")
    assert await api.ok("DELETE", "/v1/queue/delete/jobs") == {"queue": "jobs", "deleted": True}
    assert_error(await api.get("/v1/queue/get/jobs"), 404, "QUEUE_NOT_FOUND")
    assert await api.ok("DELETE", "/v1/queue/delete/jobs") == {"queue": "jobs", "deleted": False}
    await make_queue("jobs")
    assert (await api.ok("GET", "/v1/queue/stats/jobs"))["available"] == 0


async def test_delete_refused_while_another_queue_names_it(api: Any, make_queue: MakeQueue) -> None:
    await make_queue("dead")
    await make_queue("jobs", dead_letter_queue="dead")
    assert_error(await api.request("DELETE", "/v1/queue/delete/dead"), 409, "QUEUE_IN_USE")
    await api.ok("DELETE", "/v1/queue/delete/jobs")
    assert await api.ok("DELETE", "/v1/queue/delete/dead") == {"queue": "dead", "deleted": True}


async def test_purge_counts(api: Any, make_queue: MakeQueue, publish: Any, consume: Any) -> None:
    await make_queue("jobs")
    for _ in range(3):
        await publish("jobs")
    await publish("jobs", delay_seconds=60)
    await consume("jobs")
    assert await api.ok("POST", "/v1/queue/purge/jobs", {"queue": "jobs"}) == {"queue": "jobs", "purged": 4}
    stats = await api.ok("GET", "/v1/queue/stats/jobs")
    assert (stats["available"], stats["in_flight"], stats["delayed"]) == (0, 0, 0)


# --- the queue in the body must equal the path's -----------------------------------------------------
@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/queue/get/jobs"), ("PATCH", "/v1/queue/update/jobs"), ("DELETE", "/v1/queue/delete/jobs"),
    ("POST", "/v1/queue/purge/jobs"), ("GET", "/v1/queue/stats/jobs"), ("GET", "/v1/queue/dlq/list/jobs"),
    ("POST", "/v1/queue/dlq/redrive/jobs"),
])
async def test_body_queue_must_equal_path_queue(api: Any, make_queue: MakeQueue, method: str, path: str) -> None:
    await make_queue("jobs")
    await make_queue("other")
    assert_error(await api.request(method, path, {"queue": "other"}), 400, "VALIDATION_ERROR", "queue")
    assert (await api.ok("GET", "/v1/queue/get/jobs"))["queue"] == "jobs"  # the refused call did nothing
    assert (await api.request(method, path, {"queue": "jobs"})).status_code == 200
