"""queue.create, get, list, update, delete, purge and stats."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from broker import errors, schemas
from broker.http.context import ctx_of
from broker.http.cursors import decode_cursor, encode_cursor, page_params
from broker.http.edge import JSON, path_queue
from broker.http.operation import ApiRoute, Operation, page_query, queue_links
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
    if req.name.endswith(".fifo") and req.type != "fifo":
        raise errors.ValidationError("only a FIFO queue's name may end in '.fifo'", field="name")
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


_QUEUE_FAILS = (errors.QueueNotFound,)
_REUSED = (errors.IdempotencyKeyReused,)

routes = [
    ApiRoute("/v1/queue/create", create_queue, methods=["POST"], operation=Operation(
        "queue.create", "Create a queue (an existing one with the same configuration is returned)", tag="queues",
        request=schemas.CreateQueueRequest, response=schemas.QueueRecord,
        errors=(errors.QueueNotFound, errors.QueueAlreadyExists, *_REUSED, errors.InsufficientCredit,
                errors.QuotaExceeded),
        description="404 when `dead_letter_queue` does not exist; 409 when the queue exists with another "
        "configuration (omitted fields compared as their defaults).",
        links=(
            *queue_links("$response.body#/queue", "queue.get", "queue.stats", "queue.update", "queue.purge",
                         "queue.delete", "queue.dlq.list", "queue.dlq.redrive", "queue.push_subscribe"),
            *queue_links("$response.body#/queue", "queue.publish", "queue.publish_batch", "queue.consume",
                         in_body=True),
        ),
    )),
    ApiRoute("/v1/queue/get/{queue}", get_queue, methods=["GET"], operation=Operation(
        "queue.get", "A queue's configuration", tag="queues",
        request=schemas.QueueOnlyRequest, response=schemas.QueueRecord, errors=_QUEUE_FAILS,
    )),
    ApiRoute("/v1/queue/list", list_queues, methods=["GET"], operation=Operation(
        "queue.list", "The project's queues, in name order, a page at a time", tag="queues",
        response=schemas.QueueList, params=page_query(),
    )),
    ApiRoute("/v1/queue/update/{queue}", update_queue, methods=["PATCH"], operation=Operation(
        "queue.update", "Change a queue's configuration (not its type)", tag="queues",
        request=schemas.UpdateQueueRequest, response=schemas.QueueRecord, errors=(*_QUEUE_FAILS, *_REUSED),
    )),
    ApiRoute("/v1/queue/delete/{queue}", delete_queue, methods=["DELETE"], operation=Operation(
        "queue.delete", "Delete a queue with its messages (idempotent: `deleted` is false when there was none)",
        tag="queues", request=schemas.QueueOnlyRequest, response=schemas.QueueDeleted, errors=(errors.QueueInUse,),
    )),
    ApiRoute("/v1/queue/purge/{queue}", purge_queue, methods=["POST"], operation=Operation(
        "queue.purge", "Delete a queue's available, delayed and in-flight messages", tag="queues",
        request=schemas.QueueOnlyRequest, response=schemas.QueuePurged,
        errors=(*_QUEUE_FAILS, *_REUSED, errors.InsufficientCredit),
    )),
    ApiRoute("/v1/queue/stats/{queue}", queue_stats, methods=["GET"], operation=Operation(
        "queue.stats", "A queue's message counts", tag="queues",
        request=schemas.QueueOnlyRequest, response=schemas.QueueStats,
        errors=(*_QUEUE_FAILS, errors.InsufficientCredit),
    )),
]
