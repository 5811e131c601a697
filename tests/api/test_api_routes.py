"""Every route of the app, enumerated from ``broker.http.app.ROUTES``: authentication, tenant isolation, and the
error shape of unknown paths and wrong methods. A route added to the app without a sample request below
fails ``test_every_route_has_a_sample`` (and its own parametrized cases)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from apikit import assert_error
from support import project_snapshot

from broker.http.app import ROUTES
from broker.http.routes.ui import ASSETS as UI_ASSETS

UNAUTHENTICATED = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/openapi.json"), ("GET", "/docs"),
                   ("GET", "/docs/assets/swagger-ui.css"), ("GET", "/docs/assets/swagger-ui-bundle.js"),
                   ("GET", "/docs/assets/docs.js"), ("GET", "/metrics"), ("GET", "/ui"),
                   *(("GET", f"/ui/assets/{name}") for name in UI_ASSETS)}
QUEUE = "shared"
PUSH_URL = "https://93.184.215.14/hook"  # a literal, globally routable address: no DNS lookup needed


def app_routes() -> list[tuple[str, str]]:
    found = set()
    for route in ROUTES:
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, route.path))
    # The admin routes take the admin key, not a project's: tests/api/test_api_admin.py.
    return sorted(r for r in found - UNAUTHENTICATED if not r[1].startswith("/v1/admin/"))


@dataclass
class World:
    """Project A's data: queue "shared" with an available, a leased and a dead-lettered message."""

    leased: str
    receipt: str
    available: str
    dead: str


Body = Callable[[World], dict[str, Any] | None]
Check = Callable[[httpx.Response], None]


def status(code: int, error: str | None = None) -> Check:
    def check(response: httpx.Response) -> None:
        if error is None:
            assert response.status_code == code, (response.status_code, response.text)
        else:
            assert_error(response, code, error)

    return check


def reply_is(expected: Any) -> Check:
    def check(response: httpx.Response) -> None:
        assert response.status_code == 200, response.text
        body = response.json()
        for key, value in expected.items():
            assert body[key] == value, (key, body)

    return check


def assert_listed(response: httpx.Response, expected: list[tuple[str, int]]) -> None:
    assert response.status_code == 200, response.text
    assert [(r["queue"], r["max_retries"]) for r in response.json()["items"]] == expected


@dataclass(frozen=True)
class Sample:
    """A request a client could send on the route, about queue "shared" and project A's messages."""

    body: Body = field(default=lambda w: None)
    query: str = ""
    #: What project B gets when it has no queue "shared" (A has one).
    without_queue: Check = field(default=status(404, "QUEUE_NOT_FOUND"))
    #: What project B gets once it has its own empty queue "shared".
    with_own_queue: Check = field(default=status(200))


SAMPLES: dict[tuple[str, str], Sample] = {
    ("POST", "/v1/queue/create"): Sample(
        body=lambda w: {"name": QUEUE, "max_retries": 9},
        without_queue=reply_is({"queue": QUEUE, "max_retries": 9}),  # B's own, new queue
        with_own_queue=status(409, "QUEUE_ALREADY_EXISTS"),
    ),
    ("GET", "/v1/queue/get/{queue}"): Sample(with_own_queue=reply_is({"max_retries": 5})),
    ("GET", "/v1/queue/list"): Sample(
        without_queue=reply_is({"items": []}),
        with_own_queue=lambda r: assert_listed(r, [(QUEUE, 5)]),
    ),
    ("PATCH", "/v1/queue/update/{queue}"): Sample(body=lambda w: {"max_retries": 1}),
    ("DELETE", "/v1/queue/delete/{queue}"): Sample(
        without_queue=reply_is({"deleted": False}), with_own_queue=reply_is({"deleted": True})
    ),
    ("POST", "/v1/queue/purge/{queue}"): Sample(body=lambda w: {}, with_own_queue=reply_is({"purged": 0})),
    ("GET", "/v1/queue/stats/{queue}"): Sample(
        with_own_queue=reply_is({"available": 0, "in_flight": 0, "dlq": 0, "delayed": 0})
    ),
    ("POST", "/v1/queue/publish"): Sample(body=lambda w: {"queue": QUEUE, "payload": {"from": "b"}}),
    ("POST", "/v1/queue/publish_batch"): Sample(body=lambda w: {"queue": QUEUE, "messages": [{"payload": 1}]}),
    ("POST", "/v1/queue/consume"): Sample(
        body=lambda w: {"queue": QUEUE, "max_messages": 10}, with_own_queue=reply_is({"messages": []})
    ),
    ("POST", "/v1/queue/ack"): Sample(
        body=lambda w: {"queue": QUEUE, "message_id": w.leased, "receipt": w.receipt},
        with_own_queue=status(404, "MESSAGE_NOT_FOUND"),
    ),
    ("POST", "/v1/queue/ack_batch"): Sample(
        body=lambda w: {"queue": QUEUE, "messages": [{"message_id": w.leased}]},
        with_own_queue=status(404, "MESSAGE_NOT_FOUND"),
    ),
    ("POST", "/v1/queue/nack"): Sample(
        body=lambda w: {"queue": QUEUE, "message_id": w.leased, "requeue": False},
        with_own_queue=status(404, "MESSAGE_NOT_FOUND"),
    ),
    ("POST", "/v1/queue/extend"): Sample(
        body=lambda w: {"queue": QUEUE, "message_id": w.leased, "visibility_timeout": 5},
        with_own_queue=status(404, "MESSAGE_NOT_FOUND"),
    ),
    ("GET", "/v1/queue/dlq/list/{queue}"): Sample(with_own_queue=reply_is({"items": []})),
    ("POST", "/v1/queue/dlq/redrive/{queue}"): Sample(
        body=lambda w: {"message_id": w.dead}, with_own_queue=status(404, "MESSAGE_NOT_FOUND")
    ),
    ("POST", "/v1/queue/push_subscribe/{queue}"): Sample(body=lambda w: {"url": PUSH_URL}),
    ("GET", "/v1/queue/push_subscription/{queue}"): Sample(with_own_queue=status(404, "SUBSCRIPTION_NOT_FOUND")),
    ("DELETE", "/v1/queue/push_subscription/{queue}"): Sample(with_own_queue=status(404, "SUBSCRIPTION_NOT_FOUND")),
    ("GET", "/v1/account"): Sample(without_queue=reply_is({"credit": None}), with_own_queue=reply_is({"credit": None})),
    ("GET", "/v1/queue/peek/{queue}"): Sample(
        query="state=in_flight", with_own_queue=reply_is({"items": [], "next_cursor": None})
    ),
    ("GET", "/v1/queue/message/{queue}/{message_id}"): Sample(with_own_queue=status(404, "MESSAGE_NOT_FOUND")),
    ("GET", "/v1/queue/history/{queue}"): Sample(query="window=24h"),
    ("GET", "/v1/queue/overview"): Sample(
        without_queue=reply_is({"items": []}),
        with_own_queue=lambda r: [i["available"] for i in r.json()["items"]] == [0] or pytest.fail(r.text),
    ),
}


def fill_path(path: str, message_id: str = "0" * 19) -> str:
    """A route's path with its parameters filled in: queue "shared", and ``message_id``."""
    return path.format(queue=QUEUE, message_id=message_id, project="p", key_id="k")


def test_every_route_has_a_sample() -> None:
    routes = set(app_routes())
    assert routes - set(SAMPLES) == set(), "routes without a sample request in SAMPLES"
    assert set(SAMPLES) - routes == set(), "samples of routes the app does not have"


async def send(api: Any, method: str, path: str, sample: Sample, world: World, **kw: Any) -> httpx.Response:
    url = fill_path(path, world.available) + (f"?{sample.query}" if sample.query else "")
    response: httpx.Response = await api.client.request(method, url, json=sample.body(world), **kw)
    return response


async def build_world(api: Any, with_subscription: bool) -> World:
    await api.ok("POST", "/v1/queue/create", {"name": QUEUE, "max_retries": 0})
    ids = []
    for i in range(3):
        ids.append((await api.ok("POST", "/v1/queue/publish", {"queue": QUEUE, "payload": i}))["message_id"])
    dead, leased = (await api.ok("POST", "/v1/queue/consume", {"queue": QUEUE, "max_messages": 2,
                                                                "visibility_timeout": 3600}))["messages"]
    await api.ok("POST", "/v1/queue/nack", {"queue": QUEUE, "message_id": dead["message_id"]})
    if with_subscription:
        await api.ok("POST", f"/v1/queue/push_subscribe/{QUEUE}", {"url": PUSH_URL})
    return World(leased=leased["message_id"], receipt=leased["receipt"], available=ids[2], dead=dead["message_id"])


@pytest.fixture
def route_world(two_tenants: tuple[Any, Any]) -> Callable[[tuple[str, str]], Any]:
    async def build(route: tuple[str, str]) -> World:
        a, _ = two_tenants
        return await build_world(a, with_subscription="push_subscription" in route[1])

    return build


@pytest.mark.parametrize("route", app_routes(), ids=lambda r: f"{r[0]} {r[1]}")
async def test_route_requires_a_valid_key(route: tuple[str, str], two_tenants: tuple[Any, Any],
                                          route_world: Any, redis_client: Any) -> None:
    a, _ = two_tenants
    sample = SAMPLES[route]
    world = await route_world(route)
    before = await project_snapshot(redis_client, a.project)
    for headers in ({}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Bearer "},
                    {"Authorization": f"Basic {a.key}"}, {"Authorization": a.key},
                    {"Authorization": "Bearer not-a-key"}, {"Authorization": f"Bearer {a.key}x"},
                    {"Authorization": "Bearer " + "k" * 600}):
        response = await send(a, *route, sample, world, headers=headers)
        assert_error(response, 401, "UNAUTHORIZED")
    assert await project_snapshot(redis_client, a.project) == before


@pytest.mark.parametrize("route", app_routes(), ids=lambda r: f"{r[0]} {r[1]}")
async def test_route_never_reaches_another_project(route: tuple[str, str], two_tenants: tuple[Any, Any],
                                                   route_world: Any, redis_client: Any) -> None:
    a, b = two_tenants
    sample = SAMPLES[route]
    world = await route_world(route)
    before = await project_snapshot(redis_client, a.project)
    sample.without_queue(await send(b, *route, sample, world, headers=b.headers))
    assert await project_snapshot(redis_client, a.project) == before
    await b.client.request("DELETE", f"/v1/queue/delete/{QUEUE}", headers=b.headers)
    await b.ok("POST", "/v1/queue/create", {"name": QUEUE})
    sample.with_own_queue(await send(b, *route, sample, world, headers=b.headers))
    assert await project_snapshot(redis_client, a.project) == before
    # A's queue is still A's: its record and its counts are untouched.
    assert (await a.ok("GET", f"/v1/queue/get/{QUEUE}"))["max_retries"] == 0
    stats = await a.ok("GET", f"/v1/queue/stats/{QUEUE}")
    assert (stats["available"], stats["in_flight"], stats["dlq"]) == (1, 1, 1)


def allowed_methods() -> dict[str, set[str]]:
    allowed: dict[str, set[str]] = {}
    for route in ROUTES:
        allowed.setdefault(route.path, set()).update(route.methods or ())
    return allowed


@pytest.mark.parametrize("path", sorted(allowed_methods()))
async def test_wrong_method_is_405_in_the_error_shape(path: str, api: Any) -> None:
    allowed = allowed_methods()[path]
    for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - allowed):
        response = await api.request(method, fill_path(path), {})
        assert_error(response, 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize("path", ["/v1/queue/nope", "/v1/queue", "/v1/queue/get", "/v1/queue/get/a/b", "/nope",
                                  "/v2/queue/list", "/v1/queue/dlq/list"])
async def test_unknown_path_is_404_in_the_error_shape(path: str, api: Any) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}):
        response = await api.client.get(path, headers=headers)
        assert_error(response, 404, "NOT_FOUND")
    assert_error(await api.get(path), 404, "NOT_FOUND")


def body_queue_cases() -> list[Any]:
    return [pytest.param(method, path, id=f"{method} {path}") for method, path in app_routes() if "{queue}" in path]


@pytest.mark.parametrize(("method", "path"), body_queue_cases())
async def test_body_queue_must_equal_the_path_queue(method: str, path: str, api: Any) -> None:
    await api.ok("POST", "/v1/queue/create", {"name": QUEUE})
    await api.ok("POST", "/v1/queue/create", {"name": "other"})
    response = await api.request(method, fill_path(path), {"queue": "other"})
    assert_error(response, 400, "VALIDATION_ERROR", "queue")
    assert (await api.ok("GET", f"/v1/queue/get/{QUEUE}"))["queue"] == QUEUE
