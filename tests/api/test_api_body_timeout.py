"""A client that declares a body and never sends it gets a 400 once the body timeout passes, on the lean
path of the message POSTs and on the ordinary routes alike, and holds nothing afterwards; by default before
the 30 s most clients wait (it was 60 s, so a stalled client timed out without being told why)."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

import pytest

from broker.http.app import create_app
from broker.settings import DEFAULT_BODY_TIMEOUT_SECONDS, Settings

REDIS_URL = os.environ.get("BROKER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.mark.parametrize("path", ["/v1/queue/publish", "/v1/queue/create"])
async def test_a_body_that_never_arrives_is_refused(redis_client: Any, project: str, path: str) -> None:
    key = f"key-{uuid.uuid4().hex}"
    app = create_app(Settings(redis_url=REDIS_URL, api_keys=((project, key),), run_workers=False,
                              body_timeout_seconds=1), redis=redis_client)
    async with app.router.lifespan_context(app) as state:
        sent: list[dict[str, Any]] = []
        stalled = asyncio.Event()

        async def receive() -> dict[str, Any]:
            stalled.set()
            await asyncio.Event().wait()  # the body never comes
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"authorization", f"Bearer {key}".encode()), (b"content-length", b"100"),
                        (b"content-type", b"application/json")],
            "client": ("127.0.0.1", 1), "server": ("test", 80), "state": dict(state),
        }
        await app(scope, receive, send)
        assert stalled.is_set()
        start, body = sent[0], sent[1]
        assert start["status"] == 400
        error = json.loads(body["body"])["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert "did not arrive within 1 s" in error["message"]
        assert dict(start["headers"])[b"x-request-id"].decode() == error["request_id"]
        assert not state["ctx"].body_deadline._reading  # nothing left behind


def test_the_default_answers_before_clients_give_up() -> None:
    assert 10 <= DEFAULT_BODY_TIMEOUT_SECONDS <= 30
    assert Settings().body_timeout_seconds == Settings.from_env({}).body_timeout_seconds == DEFAULT_BODY_TIMEOUT_SECONDS
    assert Settings.from_env({"BROKER_BODY_TIMEOUT_SECONDS": "45"}).body_timeout_seconds == 45
