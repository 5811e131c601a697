"""Fixtures of the fuzz tests: the app in process on the test Redis, for a project of the test's own with
queues and messages in every state, driven through a raw ASGI driver (fuzzkit.call)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fuzzkit import Answer, call
from support import REDIS_URL

from broker.http.app import create_app
from broker.settings import Settings


@dataclass
class World:
    """The app, its state, a project and its key, and the ids of messages that exist."""

    app: Any
    state: dict[str, Any]
    project: str
    key: str
    redis: Any
    message_ids: list[str] = field(default_factory=list)
    receipts: list[str] = field(default_factory=list)

    async def request(self, method: str, path: str, body: bytes = b"", **kw: Any) -> Answer:
        headers = [(b"authorization", f"Bearer {self.key}".encode()), (b"content-type", b"application/json"),
                   *kw.pop("headers", [])]
        return await call(self.app, method, path.encode(), headers=headers, chunks=[body], state=self.state, **kw)

    async def ensure(self) -> None:
        """Queues and messages the generated requests can hit (recreated when a request deleted them)."""
        for body in (b'{"name":"dead"}', b'{"name":"q1","dead_letter_queue":"dead","max_retries":2}',
                     b'{"name":"f1","type":"fifo"}'):
            await self.request("POST", "/v1/queue/create", body)
        stats = (await self.request("GET", "/v1/queue/stats/q1")).json()
        if isinstance(stats, dict) and stats.get("available", 0) < 3:
            published = await self.request("POST", "/v1/queue/publish_batch",
                                           b'{"queue":"q1","messages":[{"payload":1},{"payload":{"a":[1,2]}},'
                                           b'{"payload":"x","priority":3},{"payload":4,"delay_seconds":600}]}')
            self.message_ids.extend(published.json().get("message_ids", []))
            consumed = await self.request("POST", "/v1/queue/consume",
                                          b'{"queue":"q1","max_messages":1,"visibility_timeout":600}')
            for m in consumed.json().get("messages", []):
                self.receipts.append(m["receipt"])
            del self.message_ids[:-50]
            del self.receipts[:-50]


@pytest.fixture
async def world(redis_client: Any, project: str) -> AsyncIterator[World]:
    """(``project`` and ``redis_client`` come from the suite's root conftest, which deletes the project's keys.)"""
    key = f"fuzz-{uuid.uuid4().hex}"
    app = create_app(Settings(redis_url=REDIS_URL, api_keys=((project, key),), run_workers=False,
                              push_allow_private=True), redis=redis_client)
    lifespan = app.router.lifespan_context(app)
    state = await lifespan.__aenter__()
    w = World(app, dict(state or {}), project, key, redis_client)
    await w.ensure()
    try:
        yield w
    finally:
        await lifespan.__aexit__(None, None, None)
