"""Projects, keys, credit, limits and usage (docs/admin.md), through the HTTP API: the admin API's own auth, and
every limit and the credit enforced exactly at the edge with 32 clients racing, a refused call storing nothing
and costing nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import msgspec
import pytest
from apikit import assert_error
from support import project_snapshot

from broker.store.accounts import Accounts, day_of, day_text
from broker.store.apikeys import StoredKey, create_key, digest, open_key_accounts
from broker.store.keys import AUTH_KEYS, ProjectKeys

ADMIN_KEY = "admin-" + "k" * 24
RACERS = 32


class Tenant:
    """A project created through the admin API, with a key of its own."""

    def __init__(self, client: httpx.AsyncClient, project: str, key: str):
        self.client, self.project, self.key = client, project, key
        self.headers = {"Authorization": f"Bearer {key}"}

    async def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.client.request(method, path, json=body, headers=self.headers)

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.call(method, path, body)
        assert response.status_code == 200, response.text
        return response.json()


class Admin:
    def __init__(self, client: httpx.AsyncClient):
        self.client = client
        self.headers = {"Authorization": f"Bearer {ADMIN_KEY}"}

    async def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.client.request(method, "/v1/admin/projects" + path, json=body, headers=self.headers)

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.call(method, path, body)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def admin(app_factory: Any) -> Admin:
    (api,) = await app_factory("seed", admin_key=ADMIN_KEY, auth_cache_seconds=0)
    return Admin(api.client)


@pytest.fixture
def tenant(admin: Admin, make_project: Callable[..., str]) -> Callable[..., Awaitable[Tenant]]:
    async def make(limits: dict[str, Any] | None = None, credit: int | None = None,
                   queue: str | None = "jobs") -> Tenant:
        project = make_project("quota")
        body: dict[str, Any] = {"project": project}
        if limits is not None:
            body["limits"] = limits
        await admin.ok("POST", "", body)
        key = (await admin.ok("POST", f"/{project}/keys"))["key"]
        t = Tenant(admin.client, project, key)
        if queue is not None:
            await t.ok("POST", "/v1/queue/create", {"name": queue})
        if credit is not None:
            assert (await admin.ok("POST", f"/{project}/credit", {"amount": credit}))["credit"] == credit
        return t

    return make


async def race(n: int, call: Callable[[int], Awaitable[httpx.Response]]) -> list[httpx.Response]:
    return list(await asyncio.gather(*(call(i) for i in range(n))))


def statuses(responses: list[httpx.Response]) -> dict[int, int]:
    found: dict[int, int] = {}
    for r in responses:
        found[r.status_code] = found.get(r.status_code, 0) + 1
    return found


async def stored(redis_client: Any, t: Tenant, queue: str = "jobs") -> int:
    """Messages stored in the queue, read from the store (a stats call would be charged)."""
    return int(await redis_client.hlen(ProjectKeys(t.project).queue(queue).msgs))


# --- the admin API's own authentication -------------------------------------------------------------
async def test_admin_routes_refuse_project_keys_and_a_server_without_an_admin_key(app_factory: Any,
                                                                                  make_project: Any) -> None:
    (closed,) = await app_factory(make_project())
    for headers in ({}, closed.headers, {"Authorization": f"Bearer {ADMIN_KEY}"}):
        assert_error(await closed.client.get("/v1/admin/projects", headers=headers), 401, "UNAUTHORIZED")
    (open_,) = await app_factory(make_project(), admin_key=ADMIN_KEY)
    for headers in ({}, open_.headers, {"Authorization": f"Bearer {ADMIN_KEY}x"}, {"Authorization": ADMIN_KEY}):
        assert_error(await open_.client.get("/v1/admin/projects", headers=headers), 401, "UNAUTHORIZED")
        assert_error(await open_.client.post("/v1/admin/projects", json={"project": "x"}, headers=headers), 401,
                     "UNAUTHORIZED")
    ok = await open_.client.get("/v1/admin/projects", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert ok.status_code == 200, ok.text


async def test_projects_are_created_listed_and_shown(admin: Admin, tenant: Any) -> None:
    t = await tenant(limits={"max_queues": 4, "max_payload_bytes": 1000})
    shown = await admin.ok("GET", f"/{t.project}")
    assert shown["credit"] is None and shown["disabled"] is False
    assert shown["limits"]["max_queues"] == 4 and shown["limits"]["max_payload_bytes"] == 1000
    assert shown["limits"]["max_messages"] is None
    assert t.project in {p["project"] for p in (await admin.ok("GET", ""))["items"]}
    assert_error(await admin.call("POST", "", {"project": t.project}), 409, "CONFLICT")
    assert_error(await admin.call("POST", "", {"project": "bad name"}), 400, "VALIDATION_ERROR", "project")
    assert_error(await admin.call("GET", "/absent-project-x"), 404, "NOT_FOUND")
    assert_error(await admin.call("PATCH", f"/{t.project}", {"limits": {"max_queues": -1}}), 400, "VALIDATION_ERROR")
    assert_error(await admin.call("PATCH", f"/{t.project}", {"prices": {"queue.nope": 2}}), 400, "VALIDATION_ERROR")
    account = await t.ok("GET", "/v1/account")
    assert account["project"] == t.project and account["credit"] is None
    assert account["limits"]["max_queues"] == 4


async def test_projects_are_listed_a_page_at_a_time(admin: Admin, tenant: Any) -> None:
    made = sorted([(await tenant(queue=None)).project for _ in range(3)])
    seen: list[str] = []
    cursor = None
    while True:
        page = await admin.ok("GET", "?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert len(page["items"]) <= 2
        seen += [p["project"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and set(made) <= set(seen)
    assert_error(await admin.call("GET", "?limit=0"), 400, "VALIDATION_ERROR", "limit")
    assert_error(await admin.call("GET", "?cursor=%%%"), 400, "VALIDATION_ERROR", "cursor")


async def test_a_project_of_configured_keys_has_an_account_metered_and_creditable(
        app_factory: Any, make_project: Any, clock: Any) -> None:
    """A project whose key comes from BROKER_API_KEYS (or `broker keys create`) was not created through the
    admin API, and is still listed, metered, given credit and refused at 402 like one that was."""
    (api,) = await app_factory(make_project("env"), admin_key=ADMIN_KEY, auth_cache_seconds=0)
    admin = Admin(api.client)
    assert (await admin.ok("GET", f"/{api.project}"))["credit"] is None
    assert_error(await admin.call("POST", "", {"project": api.project}), 409, "CONFLICT")
    await api.ok("POST", "/v1/queue/create", {"name": "jobs"})
    await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1})
    today = day_text(day_of(clock()))
    rows = {r["capability"]: r for r in (await admin.ok("GET", f"/{api.project}/usage"))["items"]}
    assert rows["queue.publish"]["day"] == today
    assert (rows["queue.create"]["calls"], rows["queue.publish"]["calls"], rows["queue.publish"]["published"]) == (
        1, 1, 1)
    assert (await admin.ok("POST", f"/{api.project}/credit", {"amount": 1}))["credit"] == 1
    await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 2})
    assert_error(await api.post("/v1/queue/publish", {"queue": "jobs", "payload": 3}), 402, "INSUFFICIENT_CREDIT")
    assert (await api.ok("GET", "/v1/account"))["credit"] == 0


async def test_a_key_made_outside_the_admin_api_gives_its_project_an_account(redis_client: Any,
                                                                            make_project: Any) -> None:
    accounts = Accounts(redis_client, None)  # type: ignore[arg-type]
    made = make_project("cli")
    await create_key(redis_client, made)
    assert await accounts.exists(made)
    old = make_project("old")  # a key stored by a version before accounts: only `broker serve` start-up adds it
    key = "bk_" + old
    await redis_client.hset(AUTH_KEYS, digest(key), msgspec.json.encode(StoredKey(project=old, prefix=key[:11],
                                                                                  created_at=1)))
    await open_key_accounts(redis_client, ())
    assert not await accounts.exists(old)
    await open_key_accounts(redis_client, (), stored=True)
    assert await accounts.exists(old)
    assert old in (await accounts.projects())[0]


# --- credit -------------------------------------------------------------------------------------------
async def test_first_top_up_starts_from_zero_and_corrections_add(admin: Admin, tenant: Any) -> None:
    t = await tenant()
    assert (await admin.ok("POST", f"/{t.project}/credit", {"amount": 10}))["credit"] == 10
    assert (await admin.ok("POST", f"/{t.project}/credit", {"amount": -3}))["credit"] == 7
    assert (await t.ok("GET", "/v1/account"))["credit"] == 7  # free of charge
    assert (await t.ok("GET", "/v1/account"))["credit"] == 7
    assert_error(await admin.call("POST", f"/{t.project}/credit", {"amount": "1"}), 400, "VALIDATION_ERROR", "amount")


async def test_32_racing_publishers_cannot_overdraw_the_credit(admin: Admin, tenant: Any, redis_client: Any) -> None:
    t = await tenant(credit=10)
    responses = await race(RACERS, lambda i: t.call("POST", "/v1/queue/publish", {"queue": "jobs", "payload": i}))
    assert statuses(responses) == {200: 10, 402: RACERS - 10}
    for r in responses:
        if r.status_code == 402:
            assert_error(r, 402, "INSUFFICIENT_CREDIT")
    assert (await admin.ok("GET", f"/{t.project}"))["credit"] == 0
    assert await stored(redis_client, t) == 10


async def test_a_refused_call_stores_nothing_and_a_failed_call_costs_nothing(admin: Admin, tenant: Any,
                                                                           redis_client: Any) -> None:
    t = await tenant(credit=5)
    before = await project_snapshot(redis_client, t.project)
    batch = {"queue": "jobs", "messages": [{"payload": i} for i in range(6)]}  # 1 per message: 6 > 5
    assert_error(await t.call("POST", "/v1/queue/publish_batch", batch), 402, "INSUFFICIENT_CREDIT")
    assert_error(await t.call("POST", "/v1/queue/publish", {"queue": "absent", "payload": 1}), 404, "QUEUE_NOT_FOUND")
    assert_error(await t.call("POST", "/v1/queue/ack", {"queue": "jobs", "message_id": "nope"}), 404,
                 "MESSAGE_NOT_FOUND")
    assert await project_snapshot(redis_client, t.project) == before
    await t.ok("POST", "/v1/queue/publish_batch", {"queue": "jobs", "messages": [{"payload": i} for i in range(5)]})
    assert (await admin.ok("GET", f"/{t.project}"))["credit"] == 0
    assert await stored(redis_client, t) == 5


async def test_every_charged_capability_debits_its_price(admin: Admin, tenant: Any) -> None:
    t = await tenant(credit=100)
    await admin.ok("PATCH", f"/{t.project}", {"prices": {"queue.publish": 3, "queue.consume": 0}})
    await t.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1})  # 3
    (message,) = (await t.ok("POST", "/v1/queue/consume", {"queue": "jobs", "wait_seconds": 0}))["messages"]  # 0
    await t.ok("POST", "/v1/queue/extend", {"queue": "jobs", "message_id": message["message_id"],
                                            "visibility_timeout": 30})  # 1
    await t.ok("POST", "/v1/queue/nack", {"queue": "jobs", "message_id": message["message_id"]})  # 1
    (message,) = (await t.ok("POST", "/v1/queue/consume", {"queue": "jobs"}))["messages"]
    await t.ok("POST", "/v1/queue/ack", {"queue": "jobs", "message_id": message["message_id"]})  # 1
    await t.ok("POST", "/v1/queue/create", {"name": "second"})  # 1
    await t.ok("GET", "/v1/queue/stats/jobs")  # 1
    await t.ok("GET", "/v1/queue/dlq/list/jobs")  # 1
    await t.ok("POST", "/v1/queue/purge/jobs", {})  # 1
    await t.ok("GET", "/v1/queue/get/jobs")  # 1
    await t.ok("GET", "/v1/queue/list")  # 1
    await t.ok("PATCH", "/v1/queue/update/second", {"max_retries": 2})  # 1
    await t.ok("DELETE", "/v1/queue/delete/second")  # 1
    await t.ok("GET", "/v1/account")  # not charged
    assert (await admin.ok("GET", f"/{t.project}"))["credit"] == 100 - 3 - 1 - 1 - 1 - 1 - 3 - 4
    for path in ("/v1/queue/get/absent", "/v1/queue/delete/jobs-dlq-absent"):  # a 404 costs nothing; a delete
        await t.call("GET" if "get" in path else "DELETE", path)  # of nothing is a success (deleted: false): 1
    assert (await admin.ok("GET", f"/{t.project}"))["credit"] == 100 - 3 - 1 - 1 - 1 - 1 - 3 - 4 - 1
    await admin.ok("PATCH", f"/{t.project}", {"credit": 0})
    for method, path in (("GET", "/v1/queue/get/jobs"), ("GET", "/v1/queue/list"),
                         ("PATCH", "/v1/queue/update/jobs"), ("DELETE", "/v1/queue/delete/jobs")):
        assert_error(await t.call(method, path, {"max_retries": 1} if method == "PATCH" else None), 402,
                     "INSUFFICIENT_CREDIT")
    assert (await admin.ok("GET", f"/{t.project}/usage"))["items"]  # metered
    assert (await t.ok("GET", "/v1/account"))["credit"] == 0
    await admin.ok("PATCH", f"/{t.project}", {"credit": 100})
    assert (await t.ok("GET", "/v1/queue/get/jobs"))["max_retries"] != 1  # the refused update changed nothing
    await admin.ok("PATCH", f"/{t.project}", {"credit": 2})
    assert_error(await t.call("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1}), 402,
                 "INSUFFICIENT_CREDIT")
    await admin.ok("PATCH", f"/{t.project}", {"credit": None})  # unlimited again
    for _ in range(3):
        await t.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1})
    assert (await t.ok("GET", "/v1/account"))["credit"] is None


async def test_a_long_poll_is_charged_once(admin: Admin, tenant: Any) -> None:
    t = await tenant(credit=10)
    waiting = asyncio.create_task(t.call("POST", "/v1/queue/consume", {"queue": "jobs", "wait_seconds": 5}))
    await asyncio.sleep(0.2)
    await t.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1})
    assert len((await waiting).json()["messages"]) == 1
    assert (await admin.ok("GET", f"/{t.project}"))["credit"] == 8


# --- limits -------------------------------------------------------------------------------------------
async def test_32_racing_creates_stop_exactly_at_max_queues(admin: Admin, tenant: Any) -> None:
    t = await tenant(limits={"max_queues": 5}, queue=None)
    responses = await race(RACERS, lambda i: t.call("POST", "/v1/queue/create", {"name": f"q{i}"}))
    assert statuses(responses) == {200: 5, 402: RACERS - 5}
    error = assert_error(next(r for r in responses if r.status_code == 402), 402, "QUOTA_EXCEEDED")
    assert "max_queues" in error["message"]
    assert len((await t.ok("GET", "/v1/queue/list"))["items"]) == 5
    created = next(r.json()["queue"] for r in responses if r.status_code == 200)
    await t.ok("POST", "/v1/queue/create", {"name": created})  # an existing queue again: not a new one
    await t.ok("DELETE", f"/v1/queue/delete/{created}")
    await t.ok("POST", "/v1/queue/create", {"name": "instead"})  # room for one again


async def test_32_racing_publishers_stop_exactly_at_max_messages(admin: Admin, tenant: Any, redis_client: Any) -> None:
    t = await tenant(limits={"max_messages": 12})
    await t.ok("POST", "/v1/queue/create", {"name": "other"})
    responses = await race(RACERS, lambda i: t.call("POST", "/v1/queue/publish",
                                                    {"queue": "jobs" if i % 2 else "other", "payload": i}))
    assert statuses(responses) == {200: 12, 402: RACERS - 12}
    error = assert_error(next(r for r in responses if r.status_code == 402), 402, "QUOTA_EXCEEDED")
    assert "max_messages" in error["message"]
    assert await stored(redis_client, t, "jobs") + await stored(redis_client, t, "other") == 12
    batch = {"queue": "jobs", "messages": [{"payload": 1}]}
    assert_error(await t.call("POST", "/v1/queue/publish_batch", batch), 402, "QUOTA_EXCEEDED")
    (message,) = (await t.ok("POST", "/v1/queue/consume", {"queue": "jobs"}))["messages"]
    await t.ok("POST", "/v1/queue/ack", {"queue": "jobs", "message_id": message["message_id"]})
    await t.ok("POST", "/v1/queue/publish_batch", batch)  # room for one again
    assert_error(await t.call("POST", "/v1/queue/publish_batch", batch), 402, "QUOTA_EXCEEDED")


async def test_max_payload_bytes_refuses_a_larger_payload(admin: Admin, tenant: Any, redis_client: Any) -> None:
    t = await tenant(limits={"max_payload_bytes": 10})
    before = await project_snapshot(redis_client, t.project)
    assert_error(await t.call("POST", "/v1/queue/publish", {"queue": "jobs", "payload": "x" * 20}), 402,
                 "QUOTA_EXCEEDED")
    batch = {"queue": "jobs", "messages": [{"payload": 1}, {"payload": "y" * 9}]}  # "yyyyyyyyy" is 11 bytes
    error = assert_error(await t.call("POST", "/v1/queue/publish_batch", batch), 402, "QUOTA_EXCEEDED")
    assert "max_payload_bytes" in error["message"]
    assert await project_snapshot(redis_client, t.project) == before
    await t.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": "x" * 8})  # 10 bytes with the quotes
    await admin.ok("PATCH", f"/{t.project}", {"limits": {"max_payload_bytes": None}})
    await t.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": "x" * 20})


async def test_requests_per_second_is_the_rate_limit(admin: Admin, tenant: Any) -> None:
    t = await tenant()
    shown = await admin.ok("PATCH", f"/{t.project}", {"limits": {"requests_per_second": 1, "burst": 2}})
    assert (shown["limits"]["requests_per_second"], shown["limits"]["burst"]) == (1.0, 2)
    await asyncio.sleep(1.2)  # a process re-reads whether a project has a limit within a second
    responses = [await t.call("GET", "/v1/queue/list") for _ in range(6)]
    assert 429 in {r.status_code for r in responses}
    assert_error(next(r for r in responses if r.status_code == 429), 429, "RATE_LIMITED")
    shown = await admin.ok("PATCH", f"/{t.project}", {"limits": {"requests_per_second": None}})
    assert shown["limits"]["requests_per_second"] is None


async def test_a_disabled_project_is_refused(admin: Admin, tenant: Any) -> None:
    t = await tenant()
    await admin.ok("PATCH", f"/{t.project}", {"disabled": True})
    assert_error(await t.call("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1}), 401, "UNAUTHORIZED")
    assert_error(await t.call("GET", "/v1/account"), 401, "UNAUTHORIZED")
    await admin.ok("PATCH", f"/{t.project}", {"disabled": False})
    await t.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1})


# --- keys ---------------------------------------------------------------------------------------------
async def test_keys_are_listed_revoked_and_rotated_with_an_overlap(admin: Admin, tenant: Any) -> None:
    t = await tenant()
    (listed,) = (await admin.ok("GET", f"/{t.project}/keys"))["items"]
    assert listed["key"] is None and t.key.startswith(listed["prefix"])
    rotated = await admin.ok("POST", f"/{t.project}/keys/{listed['key_id']}/rotate", {"overlap_seconds": 3600})
    new = Tenant(t.client, t.project, rotated["key"])
    await t.ok("GET", "/v1/queue/list")  # the old key, within its overlap window
    await new.ok("GET", "/v1/queue/list")
    rotated_again = await admin.ok("POST", f"/{t.project}/keys/{rotated['key_id']}/rotate", {"overlap_seconds": 0})
    assert_error(await new.call("GET", "/v1/queue/list"), 401, "UNAUTHORIZED")  # no overlap: refused at once
    newest = Tenant(t.client, t.project, rotated_again["key"])
    await newest.ok("GET", "/v1/queue/list")
    await admin.ok("DELETE", f"/{t.project}/keys/{rotated_again['key_id']}")
    assert_error(await newest.call("GET", "/v1/queue/list"), 401, "UNAUTHORIZED")
    assert_error(await admin.call("DELETE", f"/{t.project}/keys/{rotated_again['key_id']}"), 404, "NOT_FOUND")


# --- usage --------------------------------------------------------------------------------------------
async def test_usage_is_exact_under_concurrency(admin: Admin, tenant: Any, clock: Any) -> None:
    t = await tenant()
    responses = await race(RACERS, lambda i: t.call("POST", "/v1/queue/publish", {"queue": "jobs", "payload": "ab"}))
    assert statuses(responses) == {200: RACERS}
    await t.ok("POST", "/v1/queue/publish_batch", {"queue": "jobs", "messages": [{"payload": 1}] * 3})
    consumed = await race(8, lambda i: t.call("POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 5}))
    delivered = sum(len(r.json()["messages"]) for r in consumed)
    assert delivered == RACERS + 3
    today = day_text(day_of(clock()))
    report = await admin.ok("GET", f"/{t.project}/usage?from={today}&to={today}")
    rows = {r["capability"]: r for r in report["items"]}
    assert rows["queue.publish"] == {"day": today, "capability": "queue.publish", "calls": RACERS,
                                     "published": RACERS, "delivered": 0, "pushed": 0, "bytes": 4 * RACERS}
    assert (rows["queue.publish_batch"]["calls"], rows["queue.publish_batch"]["published"]) == (1, 3)
    assert (rows["queue.consume"]["calls"], rows["queue.consume"]["delivered"]) == (8, delivered)
    assert rows["queue.create"]["calls"] == 1
    own = await t.ok("GET", "/v1/account")
    assert {r["capability"] for r in own["usage"]["items"]} == set(rows)
    assert_error(await admin.call("GET", f"/{t.project}/usage?from=yesterday"), 400, "VALIDATION_ERROR", "from")
    assert (await admin.ok("GET", f"/{t.project}/usage?from=2000-01-01&to=2000-01-31"))["items"] == []


async def test_a_refused_admin_change_writes_nothing(admin: Admin, tenant: Any, make_project: Any,
                                                     redis_client: Any) -> None:
    t = await tenant(limits={"max_queues": 3})
    before = await admin.ok("GET", f"/{t.project}")
    bad = {"limits": {"max_queues": 9, "requests_per_second": 5}, "prices": {"queue.publish": -1}}
    assert_error(await admin.call("PATCH", f"/{t.project}", bad), 400, "VALIDATION_ERROR", "prices.queue.publish")
    assert await admin.ok("GET", f"/{t.project}") == before
    fresh = make_project("quota")
    response = await admin.call("POST", "", {"project": fresh, "limits": {"max_messages": -5}})
    assert_error(response, 400, "VALIDATION_ERROR", "limits.max_messages")
    assert_error(await admin.call("GET", f"/{fresh}"), 404, "NOT_FOUND")


async def test_a_disabled_project_is_refused_on_every_route_with_any_of_its_keys(app_factory: Any,
                                                                                 make_project: Any) -> None:
    (api,) = await app_factory(make_project("quota"), admin_key=ADMIN_KEY, auth_cache_seconds=0)  # a key from env
    admin = Admin(api.client)
    await admin.ok("GET", f"/{api.project}")  # its account, opened at start-up
    await api.ok("GET", "/v1/queue/list")
    await admin.ok("PATCH", f"/{api.project}", {"disabled": True})
    assert_error(await api.get("/v1/queue/list"), 401, "UNAUTHORIZED")  # not a charged route: refused by the key ring
    await admin.ok("PATCH", f"/{api.project}", {"disabled": False})
    await api.ok("GET", "/v1/queue/list")


async def test_acks_on_consume_cost_an_ack_batch_more(admin: Admin, tenant: Any) -> None:
    t = await tenant(credit=100)
    await admin.ok("PATCH", f"/{t.project}", {"prices": {"queue.consume": 2, "queue.ack_batch": 3}})
    for n in range(2):
        await t.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": n})  # 1 each
    (m,) = (await t.ok("POST", "/v1/queue/consume", {"queue": "jobs"}))["messages"]  # 2
    await t.ok("POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 1, "ack": []})  # 2: no items
    assert (await admin.ok("GET", f"/{t.project}"))["credit"] == 100 - 2 - 2 - 2
    await admin.ok("PATCH", f"/{t.project}", {"credit": 4})  # below consume + ack_batch
    ack = [{"message_id": m["message_id"], "receipt": m["receipt"]}]
    assert_error(await t.call("POST", "/v1/queue/consume", {"queue": "jobs", "ack": ack}), 402,
                 "INSUFFICIENT_CREDIT")
    await admin.ok("PATCH", f"/{t.project}", {"credit": 5})
    reply = await t.ok("POST", "/v1/queue/consume", {"queue": "jobs", "ack": ack})
    assert reply["acked"] == [m["message_id"]]
    assert (await admin.ok("GET", f"/{t.project}"))["credit"] == 0


async def test_nacks_on_consume_cost_a_nack_each(admin: Admin, tenant: Any) -> None:
    t = await tenant(credit=100)
    await admin.ok("PATCH", f"/{t.project}", {"prices": {"queue.consume": 2, "queue.ack_batch": 3, "queue.nack": 5}})
    for n in range(3):
        await t.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": n})  # 1 each
    leased = (await t.ok("POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 3}))["messages"]  # 2
    await admin.ok("PATCH", f"/{t.project}", {"credit": 2 + 3 + 2 * 5 - 1})  # below consume + ack_batch + 2 nacks
    ack = [{"message_id": leased[0]["message_id"]}]
    nack = [{"message_id": m["message_id"], "requeue": False} for m in leased[1:]]
    assert_error(await t.call("POST", "/v1/queue/consume", {"queue": "jobs", "ack": ack, "nack": nack}), 402,
                 "INSUFFICIENT_CREDIT")
    assert (await t.ok("GET", "/v1/queue/stats/jobs"))["in_flight"] == 3  # refused as a whole
    await admin.ok("PATCH", f"/{t.project}", {"credit": 2 + 3 + 2 * 5})
    reply = await t.ok("POST", "/v1/queue/consume", {"queue": "jobs", "ack": ack, "nack": nack})
    assert [n["message_id"] for n in reply["nacked"]] == [m["message_id"] for m in leased[1:]]
    assert (await admin.ok("GET", f"/{t.project}"))["credit"] == 0
    rows = {r["capability"]: r["calls"] for r in (await admin.ok("GET", f"/{t.project}/usage"))["items"]}
    assert (rows["queue.consume"], rows["queue.ack_batch"], rows["queue.nack"]) == (2, 1, 2)  # a nack call each
