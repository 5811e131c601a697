"""queue.dlq.list and queue.dlq.redrive."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from broker import errors, schemas
from broker.http.context import ctx_of
from broker.http.cursors import decode_dlq_cursor, encode_cursor, page_params, parse_time_ms
from broker.http.edge import JSON, path_queue
from broker.http.operation import ApiRoute, Operation, page_query
from broker.schemas import DeadLetterList, QueueOnlyRequest, Redriven, RedriveRequest
from broker.store.queues import fingerprint


async def dlq_list(request: Request) -> Response:
    ctx = ctx_of(request)
    project = await ctx.project(request)
    body = await ctx.body(request, QueueOnlyRequest)
    name = path_queue(request, body.queue)
    cursor, limit = page_params(request)
    after = None if cursor is None else decode_dlq_cursor(cursor)
    items, last = await ctx.store.dlq_list(project, name, after, limit)
    next_cursor = encode_cursor(f"{last[0]}:{last[1]}") if last else None
    return JSON(DeadLetterList(items=items, next_cursor=next_cursor))


async def dlq_redrive(request: Request) -> Response:
    ctx = ctx_of(request)
    project = await ctx.project(request)
    req = await ctx.body(request, RedriveRequest)
    name = path_queue(request, req.queue)
    since_ms = None if req.since is None else parse_time_ms(req.since, "since")
    fp = fingerprint(f"queue.dlq.redrive/{name}", req) if req.idempotency_key else ""
    redriven = await ctx.store.redrive(
        project,
        name,
        message_id=req.message_id,
        since_ms=since_ms,
        max_messages=req.max_messages,
        idempotency_key=req.idempotency_key,
        fp=fp,
    )
    return JSON(Redriven(queue=name, redriven=redriven))


routes = [
    ApiRoute("/v1/queue/dlq/list/{queue}", dlq_list, methods=["GET"], operation=Operation(
        "queue.dlq.list", "A queue's dead letters, wherever they sit, oldest first", tag="dead letters",
        request=schemas.QueueOnlyRequest, response=schemas.DeadLetterList, params=page_query(),
        errors=(errors.QueueNotFound, errors.InsufficientCredit),
    )),
    ApiRoute("/v1/queue/dlq/redrive/{queue}", dlq_redrive, methods=["POST"], operation=Operation(
        "queue.dlq.redrive", "Move dead letters back to the queue, with a fresh retry budget", tag="dead letters",
        request=schemas.RedriveRequest, response=schemas.Redriven,
        errors=(errors.QueueNotFound, errors.MessageNotFound, errors.LeaseExpired, errors.IdempotencyKeyReused,
                errors.InsufficientCredit),
    )),
]
