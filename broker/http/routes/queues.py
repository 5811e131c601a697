"""queue.create, get, list, update, delete, purge and stats."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker import errors
from broker.http.context import ctx_of
from broker.http.cursors import decode_cursor, encode_cursor, page_params
from broker.http.edge import JSON, path_queue
from broker.schemas import (
    QUEUE_NAME_PATTERN,
    CreateQueueRequest,
    QueueDeleted,
    QueueList,
    QueueOnlyRequest,
    QueuePurged,
    UpdateQueueRequest,
)
from broker.store.queues import fingerprint

_NAME_RE = re.compile(QUEUE_NAME_PATTERN)


async def create_queue(request: Request) -> Response:
    ctx = ctx_of(request)
    project = await ctx.project(request)
    req = await ctx.body(request, CreateQueueRequest)
    if req.dead_letter_queue == req.name:
        raise errors.ValidationError("a queue cannot be its own dead-letter queue", field="dead_letter_queue")
    record, _created = await ctx.store.create_queue(project, req)
    return JSON(record)


async def get_queue(request: Request) -> Response:
    ctx = ctx_of(request)
    project = await ctx.project(request)
    req = await ctx.body(request, QueueOnlyRequest)
    return JSON(await ctx.store.get_queue(project, path_queue(request, req.queue)))


async def list_queues(request: Request) -> Response:
    ctx = ctx_of(request)
    project = await ctx.project(request)
    cursor, limit = page_params(request)
    after = ""
    if cursor is not None:
        after = decode_cursor(cursor)
        if not _NAME_RE.match(after):
            raise errors.ValidationError("invalid cursor", field="cursor")
    items, more = await ctx.store.list_queues(project, after, limit)
    next_cursor = encode_cursor(items[-1].queue) if more and items else None
    return JSON(QueueList(items=items, next_cursor=next_cursor))


_UPDATE_FIELDS = {
    "dead_letter_queue": "dlq",
    "max_retries": "max_retries",
    "message_retention_days": "retention_days",
    "visibility_timeout_default": "visibility",
    "enable_priority": "priority",
}


async def update_queue(request: Request) -> Response:
    ctx = ctx_of(request)
    project = await ctx.project(request)
    req = await ctx.body(request, UpdateQueueRequest)
    name = path_queue(request, req.queue)
    if req.dead_letter_queue == name:
        raise errors.ValidationError("a queue cannot be its own dead-letter queue", field="dead_letter_queue")
    changes: dict[str, Any] = {}
    for field, stored in _UPDATE_FIELDS.items():
        value = getattr(req, field)
        if value is msgspec.UNSET:
            continue
        if field == "dead_letter_queue":
            value = value or ""
        elif field == "enable_priority":
            value = int(value)
        changes[stored] = value
    fp = fingerprint(f"queue.update/{name}", req) if req.idempotency_key else ""
    record = await ctx.store.update_queue(project, name, changes, req.idempotency_key, fp)
    return JSON(record)


async def delete_queue(request: Request) -> Response:
    ctx = ctx_of(request)
    project = await ctx.project(request)
    req = await ctx.body(request, QueueOnlyRequest)
    name = path_queue(request, req.queue)
    deleted = await ctx.store.delete_queue(project, name)
    return JSON(QueueDeleted(queue=name, deleted=deleted))


async def purge_queue(request: Request) -> Response:
    ctx = ctx_of(request)
    project = await ctx.project(request)
    req = await ctx.body(request, QueueOnlyRequest)
    name = path_queue(request, req.queue)
    fp = fingerprint(f"queue.purge/{name}", req) if req.idempotency_key else ""
    purged = await ctx.store.purge(project, name, req.idempotency_key, fp)
    return JSON(QueuePurged(queue=name, purged=purged))


async def queue_stats(request: Request) -> Response:
    ctx = ctx_of(request)
    project = await ctx.project(request)
    req = await ctx.body(request, QueueOnlyRequest)
    return JSON(await ctx.store.stats(project, path_queue(request, req.queue)))


routes = [
    Route("/v1/queue/create", create_queue, methods=["POST"]),
    Route("/v1/queue/get/{queue}", get_queue, methods=["GET"]),
    Route("/v1/queue/list", list_queues, methods=["GET"]),
    Route("/v1/queue/update/{queue}", update_queue, methods=["PATCH"]),
    Route("/v1/queue/delete/{queue}", delete_queue, methods=["DELETE"]),
    Route("/v1/queue/purge/{queue}", purge_queue, methods=["POST"]),
    Route("/v1/queue/stats/{queue}", queue_stats, methods=["GET"]),
]
