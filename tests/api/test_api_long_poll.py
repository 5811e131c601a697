"""Long polls (consume with wait_seconds) on the real clock: a waiting consumer wakes promptly when a message
is published, becomes due or has its lease end, and returns empty after the wait."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from apikit import assert_error
from support import eventually

from broker.store.keys import ProjectKeys

WAKE_BOUND = 1.0  # seconds; generous: the wake-up is a pub/sub message, normally milliseconds


async def waiting(api: Any, count: int = 1, queue: str = "jobs") -> bool:
    """``count`` consumes of ``queue`` wait for a notification: registered with the app's notifier, which listens
    on the project's channel (Redis counts its subscription), so a publish now reaches them."""
    registered = len(api.ctx.notifier._waiters.get((api.project, queue), ()))
    [(_channel, listeners)] = await api.ctx.redis.pubsub_numsub(ProjectKeys(api.project).notify)
    return registered >= count and listeners >= 1


@pytest.fixture
async def live(app_factory: Any, project: str) -> Any:
    """The app on the real clock, with a queue "jobs"."""
    (api,) = await app_factory(project, use_clock=False)
    await api.ok("POST", "/v1/queue/create", {"name": "jobs"})
    return api


async def test_wakes_when_a_message_is_published(live: Any) -> None:
    waiter = asyncio.create_task(live.ok("POST", "/v1/queue/consume", {"queue": "jobs", "wait_seconds": 10}))
    await eventually(lambda: waiting(live), what="the consume waiting")
    assert not waiter.done()
    published_at = time.monotonic()
    mid = (await live.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1}))["message_id"]
    reply = await asyncio.wait_for(waiter, 10)
    latency = time.monotonic() - published_at
    assert [m["message_id"] for m in reply["messages"]] == [mid]
    assert latency < WAKE_BOUND, latency


async def test_returns_empty_after_the_wait(live: Any) -> None:
    started = time.monotonic()
    reply = await live.ok("POST", "/v1/queue/consume", {"queue": "jobs", "wait_seconds": 0.5})
    elapsed = time.monotonic() - started
    assert reply == {"messages": []}
    assert 0.5 <= elapsed < 0.5 + WAKE_BOUND, elapsed


async def test_returns_at_once_when_messages_wait(live: Any) -> None:
    await live.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1})
    started = time.monotonic()
    reply = await live.ok("POST", "/v1/queue/consume", {"queue": "jobs", "wait_seconds": 20})
    assert len(reply["messages"]) == 1
    assert time.monotonic() - started < WAKE_BOUND


async def test_wakes_when_a_delayed_message_is_due(live: Any) -> None:
    await live.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1, "delay_seconds": 0.5})
    started = time.monotonic()
    reply = await live.ok("POST", "/v1/queue/consume", {"queue": "jobs", "wait_seconds": 10})
    elapsed = time.monotonic() - started
    assert len(reply["messages"]) == 1
    assert elapsed < 0.5 + WAKE_BOUND, elapsed


async def test_wakes_when_a_lease_ends(live: Any) -> None:
    await live.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1})
    [first] = (await live.ok("POST", "/v1/queue/consume", {"queue": "jobs", "visibility_timeout": 0.5}))["messages"]
    started = time.monotonic()
    reply = await live.ok("POST", "/v1/queue/consume", {"queue": "jobs", "wait_seconds": 10})
    elapsed = time.monotonic() - started
    assert [(m["message_id"], m["attempts"]) for m in reply["messages"]] == [(first["message_id"], 2)]
    assert elapsed < 0.5 + WAKE_BOUND, elapsed


async def test_one_message_wakes_one_of_many_waiters(live: Any) -> None:
    waiters = [asyncio.create_task(live.ok("POST", "/v1/queue/consume", {"queue": "jobs", "wait_seconds": 1.5}))
               for _ in range(5)]
    await eventually(lambda: waiting(live, 5), what="five consumes waiting")
    await live.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": 1})
    replies = await asyncio.gather(*waiters)
    assert sorted(len(r["messages"]) for r in replies) == [0, 0, 0, 0, 1]


async def test_wait_is_at_most_20_seconds(live: Any) -> None:
    r = await live.post("/v1/queue/consume", {"queue": "jobs", "wait_seconds": 20.5})
    assert_error(r, 400, "VALIDATION_ERROR", "wait_seconds")


async def test_waiting_on_a_missing_queue_is_404_at_once(live: Any) -> None:
    started = time.monotonic()
    assert_error(await live.post("/v1/queue/consume", {"queue": "nope", "wait_seconds": 10}), 404, "QUEUE_NOT_FOUND")
    assert time.monotonic() - started < WAKE_BOUND
