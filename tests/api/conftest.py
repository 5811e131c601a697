"""Fixtures of the HTTP tests (the app itself comes from tests/conftest.py: ``api``, ``two_tenants``,
``app_factory``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from apikit import MakeQueue


@pytest.fixture
def make_queue(api: Any) -> MakeQueue:
    """Create a queue through the API: ``await make_queue("jobs", max_retries=1)``; its QueueRecord."""

    async def make(name: str = "jobs", **config: Any) -> dict[str, Any]:
        record: dict[str, Any] = await api.ok("POST", "/v1/queue/create", {"name": name, **config})
        return record

    return make


@pytest.fixture
def publish(api: Any) -> Callable[..., Awaitable[str]]:
    """Publish one message: ``await publish("jobs", {"n": 1}, delay_seconds=5)``; its id."""

    async def send(queue: str, payload: Any = None, **fields: Any) -> str:
        body = {"queue": queue, "payload": {"n": 0} if payload is None else payload, **fields}
        reply: dict[str, Any] = await api.ok("POST", "/v1/queue/publish", body)
        return str(reply["message_id"])

    return send


@pytest.fixture
def consume(api: Any) -> Callable[..., Awaitable[list[dict[str, Any]]]]:
    """Consume: ``await consume("jobs", max_messages=10)``; the messages."""

    async def take(queue: str, **fields: Any) -> list[dict[str, Any]]:
        reply = await api.ok("POST", "/v1/queue/consume", {"queue": queue, **fields})
        messages: list[dict[str, Any]] = reply["messages"]
        return messages

    return take
