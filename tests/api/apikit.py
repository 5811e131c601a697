"""Helpers of the HTTP tests: the contract's object shapes and error shape, and short-hands for calls."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

QUEUE_RECORD = {"queue", "type", "dead_letter_queue", "max_retries", "message_retention_days",
                "visibility_timeout_default", "enable_priority", "created_at"}
QUEUE_STATS = {"queue", "available", "in_flight", "dlq", "delayed", "oldest_age_seconds"}
QUEUE_MESSAGE = {"message_id", "payload", "priority", "group_id", "attempts", "enqueued_at", "receipt",
                 "lease_expires_at"}
DLQ_ITEM = {"message_id", "payload", "priority", "group_id", "attempts", "enqueued_at", "dead_lettered_at", "reason",
            "source_queue"}
DLQ_ITEM_EXTENSIONS = {"last_error"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
_UNSET: Any = object()

MakeQueue = Callable[..., Awaitable[dict[str, Any]]]


def assert_error(response: httpx.Response, status: int, code: str, field: str | None = _UNSET) -> dict[str, Any]:
    """The response is the contract's error: the status, ``{"error": {code, message, request_id, field?}}``,
    and an ``X-Request-Id`` header equal to the body's request_id."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message", "request_id"} <= set(error) <= {"code", "message", "request_id", "field"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert error["request_id"] and error["request_id"] == response.headers["x-request-id"]
    if field is not _UNSET:
        assert error.get("field") == field, error
    return error


def assert_record(record: dict[str, Any], **expected: Any) -> None:
    assert set(record) == QUEUE_RECORD, record
    assert RFC3339.match(record["created_at"])
    for name, value in expected.items():
        assert record[name] == value, (name, record)


def assert_message(message: dict[str, Any]) -> None:
    assert set(message) == QUEUE_MESSAGE, message
    assert RFC3339.match(message["enqueued_at"]) and RFC3339.match(message["lease_expires_at"])
    assert isinstance(message["attempts"], int) and message["attempts"] >= 1
    assert isinstance(message["receipt"], str) and message["receipt"]


def assert_dead_letter(item: dict[str, Any]) -> None:
    assert DLQ_ITEM <= set(item) <= DLQ_ITEM | DLQ_ITEM_EXTENSIONS, item
    assert RFC3339.match(item["enqueued_at"]) and RFC3339.match(item["dead_lettered_at"])
    assert item["reason"] in ("nack", "max_retries", "push_failed")
