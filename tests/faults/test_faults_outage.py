"""Store outages against a real ``broker serve``: while its redis-server is down or frozen, every route
answers 503 UNAVAILABLE in the contract's shape within a bounded time, /readyz is 503, long polls end on
time; when the store is back, the same process serves again by itself, with its data."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from typing import Any

import httpx
import pytest
from loadgen import shape_problem
from routekit import route_requests
from support import eventually
from support.fleet import ApiServer, Fleet, RedisNode

#: Bounds on a 503 while the store is away (connect timeout 1 s, socket timeout 3 s in broker.http.app.connect).
DOWN_BOUND_S = 2.0  # refused connections fail at once
FROZEN_BOUND_S = 8.0  # a frozen Redis accepts connections and never answers: socket timeouts


@pytest.fixture
def served(fleet: Fleet) -> tuple[RedisNode, ApiServer, str]:
    key = f"outage-{uuid.uuid4().hex}"
    node = fleet.redis(name="store")
    server = fleet.serve(node.url, f"outage:{key}", BROKER_PUSH_ALLOW_PRIVATE="1")
    return node, server, key


async def _call(http: httpx.AsyncClient, method: str, path: str, body: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await http.request(method, path, json=body)
    return response, time.monotonic() - started


def _assert_unavailable(response: httpx.Response, what: str) -> None:
    assert response.status_code == 503, (what, response.status_code, response.text)
    assert shape_problem(response) == "", (what, shape_problem(response), response.text)
    assert response.json()["error"]["code"] == "UNAVAILABLE"
    assert int(response.headers["retry-after"]) >= 1


async def _every_route_unavailable(http: httpx.AsyncClient, bound: float) -> None:
    calls = route_requests("work")
    results = await asyncio.gather(*(_call(http, method, path, body) for method, path, body in calls))
    for (method, path, _), (response, elapsed) in zip(calls, results, strict=True):
        _assert_unavailable(response, f"{method} {path}")
        assert elapsed < bound, f"{method} {path} took {elapsed:.1f} s"
    ready, elapsed = await _call(http, "GET", "/readyz", None)
    _assert_unavailable(ready, "/readyz")
    assert elapsed < bound
    assert (await http.get("/healthz")).status_code == 200  # the process runs


async def _ready_again(http: httpx.AsyncClient, timeout: float = 10) -> None:
    async def ready() -> bool:
        return (await http.get("/readyz")).status_code == 200

    await eventually(ready, timeout, interval=0.05, what="/readyz 200 after the store came back")


def _listening(node: RedisNode) -> bool:
    """The server's notifier is subscribed on the store (a long poll waits there, or did a moment ago)."""
    with node.client() as client:
        return any(count for _channel, count in client.pubsub_numsub(*client.pubsub_channels()))


async def test_every_route_is_503_while_redis_is_down_and_serves_again_after(
    served: tuple[RedisNode, ApiServer, str],
) -> None:
    node, server, key = served
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"},
                                 timeout=30) as http:
        assert (await http.post("/v1/queue/create", json={"name": "work"})).status_code == 200
        kept = (await http.post("/v1/queue/publish", json={"queue": "work", "payload": {"keep": 1}})).json()

        await asyncio.to_thread(node.kill, signal.SIGKILL)
        await _every_route_unavailable(http, DOWN_BOUND_S)
        await asyncio.sleep(1.5)  # past the auth cache and the guard's check: still 503, never a 500
        await _every_route_unavailable(http, DOWN_BOUND_S)

        await asyncio.to_thread(node.start)
        await _ready_again(http, 5)
        consumed = (await http.post("/v1/queue/consume", json={"queue": "work"})).json()["messages"]
        assert [m["message_id"] for m in consumed] == [kept["message_id"]]
    assert server.starts == 1 and server.proc is not None and server.proc.poll() is None
    assert "Traceback" not in server.stderr()


async def test_every_route_is_503_within_a_bound_while_redis_is_frozen(
    served: tuple[RedisNode, ApiServer, str],
) -> None:
    node, server, key = served
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"},
                                 timeout=30) as http:
        assert (await http.post("/v1/queue/create", json={"name": "work"})).status_code == 200
        node.freeze()
        try:
            await asyncio.sleep(0.6)  # past the key cache
            await _every_route_unavailable(http, FROZEN_BOUND_S)
        finally:
            node.thaw()
        await _ready_again(http, 5)
        published = await http.post("/v1/queue/publish", json={"queue": "work", "payload": 1})
        assert published.status_code == 200
    assert "Traceback" not in server.stderr()


async def test_long_polls_end_on_time_while_redis_is_frozen_then_get_messages_again(
    served: tuple[RedisNode, ApiServer, str],
) -> None:
    node, server, key = served
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"},
                                 timeout=60) as http:
        assert (await http.post("/v1/queue/create", json={"name": "work"})).status_code == 200
        wait = 4.0
        polls = [asyncio.create_task(_call(http, "POST", "/v1/queue/consume", {"queue": "work", "wait_seconds": wait}))
                 for _ in range(5)]
        await eventually(lambda: _listening(node), 5, what="the long polls waiting")
        node.freeze()
        try:
            results = await asyncio.gather(*polls)
        finally:
            node.thaw()
        for response, elapsed in results:
            assert response.status_code in (200, 503), response.text
            if response.status_code == 503:
                _assert_unavailable(response, "a long poll")
            assert elapsed < wait + FROZEN_BOUND_S, elapsed
        await _ready_again(http)
        waiter = asyncio.create_task(_call(http, "POST", "/v1/queue/consume", {"queue": "work", "wait_seconds": 10}))
        # Nothing outside the server shows this one poll waiting (the notifier stays subscribed after the earlier
        # ones): give it time to arrive, well inside the safety poll (2 s), which must not be what wakes it.
        await asyncio.sleep(0.5)
        published_at = time.monotonic()
        published = await http.post("/v1/queue/publish", json={"queue": "work", "payload": "after"})
        response, _elapsed = await waiter
        assert [m["message_id"] for m in response.json()["messages"]] == [published.json()["message_id"]]
        assert time.monotonic() - published_at < 1.0, "a publish after the freeze did not wake the long poll"
