"""Extensions for looking without touching: queue.peek (a queue's messages in one state), queue.message (one
message wherever it is), queue.history (per-minute counts and depth over the last hour or day) and
queue.overview (every queue's counts, a page at a time: the dashboard's table). All read-only: nothing is
leased, moved, counted or maintained (tests/api/test_api_inspect.py compares the queue's keys, DUMP by DUMP,
before and after)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response

from broker import errors, schemas
from broker.http.context import ctx_of
from broker.http.cursors import decode_cursor, encode_cursor, page_params
from broker.http.edge import JSON, path_queue
from broker.http.operation import QUEUE_PARAM, ApiRoute, Operation, Param, page_query
from broker.schemas import (
    HISTORY_WINDOWS,
    MAX_MESSAGE_ID,
    MAX_OVERVIEW,
    MAX_PEEK,
    PEEK_STATES,
    QUEUE_NAME_PATTERN,
    PeekPage,
    QueueHistory,
    QueueOnlyRequest,
    QueueOverview,
)
from broker.store.inspect import Inspector

_NAME_RE = re.compile(QUEUE_NAME_PATTERN)
#: A peek cursor: "<score>:<message id>" (scores are integers, negative for available messages kept apart).
_PEEK_CURSOR_RE = re.compile(r"(-?[0-9]{1,20}):([0-9a-f]{19})")
DEFAULT_PEEK = 20


def _choice(request: Request, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = request.query_params.get(name, default)
    if value not in allowed:
        raise errors.ValidationError(f"{name} must be one of {', '.join(allowed)}", field=name)
    return value


async def peek(request: Request) -> Response:
    ctx = ctx_of(request)
    project = await ctx.project(request)
    name = path_queue(request, (await ctx.body(request, QueueOnlyRequest)).queue)
    state = _choice(request, "state", PEEK_STATES, "available")
    cursor, limit = page_params(request, DEFAULT_PEEK, MAX_PEEK)
    after = None
    if cursor is not None:
        found = _PEEK_CURSOR_RE.fullmatch(decode_cursor(cursor))
        if found is None:
            raise errors.ValidationError("invalid cursor", field="cursor")
        after = (int(found[1]), found[2])
    items, last = await Inspector(ctx.store).peek(project, name, state, after, limit)
    next_cursor = encode_cursor(f"{last[0]}:{last[1]}") if last else None
    return JSON(PeekPage(queue=name, state=state, items=items, next_cursor=next_cursor))


async def message(request: Request) -> Response:
    ctx = ctx_of(request)
    project = await ctx.project(request)
    name = path_queue(request, (await ctx.body(request, QueueOnlyRequest)).queue)
    message_id: str = request.path_params["message_id"]
    if len(message_id) > MAX_MESSAGE_ID:
        raise errors.ValidationError(f"message ids are at most {MAX_MESSAGE_ID} characters", field="message_id")
    return JSON(await Inspector(ctx.store).message(project, name, message_id))


async def history(request: Request) -> Response:
    ctx = ctx_of(request)
    project = await ctx.project(request)
    name = path_queue(request, (await ctx.body(request, QueueOnlyRequest)).queue)
    window = _choice(request, "window", tuple(HISTORY_WINDOWS), "1h")
    points = await Inspector(ctx.store).history(project, name, HISTORY_WINDOWS[window])
    return JSON(QueueHistory(queue=name, window=window, points=points))


async def overview(request: Request) -> Response:
    ctx = ctx_of(request)
    project = await ctx.project(request)
    cursor, limit = page_params(request, MAX_OVERVIEW, MAX_OVERVIEW)
    after = ""
    if cursor is not None:
        after = decode_cursor(cursor)
        if not _NAME_RE.match(after):
            raise errors.ValidationError("invalid cursor", field="cursor")
    items, more = await Inspector(ctx.store).overview(project, after, limit)
    next_cursor = encode_cursor(items[-1].queue) if more and items else None
    return JSON(QueueOverview(items=items, next_cursor=next_cursor))


_STATE = Param("state", Literal["available", "delayed", "in_flight"], "Which messages: waiting and due, waiting "
               "for their delay, or leased.", default="available", errors=(errors.ValidationError,))
_WINDOW = Param("window", Literal["1h", "24h"], "The last hour or the last day, a point per minute.", default="1h",
                errors=(errors.ValidationError,))
_MESSAGE_ID = Param("message_id", Annotated[str, Meta(min_length=1, max_length=MAX_MESSAGE_ID)], "The message's id.",
                    where="path", errors=(errors.ValidationError,))

routes = [
    ApiRoute("/v1/queue/peek/{queue}", peek, methods=["GET"], operation=Operation(
        "queue.peek", "A queue's messages in one state, read without leasing or changing anything", extension=True,
        request=QueueOnlyRequest, response=schemas.PeekPage,
        params=(QUEUE_PARAM, _STATE, *page_query(DEFAULT_PEEK, MAX_PEEK)),
        errors=(errors.QueueNotFound,),
        description="Messages show where they sit: no maintenance is applied first, so a delay that fell due a "
        "moment ago can still be listed as delayed. `lease_expires_at` (in flight) is the lease's end, or the "
        "message's retention deadline when that comes first.",
    )),
    ApiRoute("/v1/queue/message/{queue}/{message_id}", message, methods=["GET"], operation=Operation(
        "queue.message", "One message of a queue wherever it is (waiting, in flight or a dead letter), read-only",
        extension=True, request=QueueOnlyRequest, response=schemas.InspectedMessage, params=(QUEUE_PARAM, _MESSAGE_ID),
        errors=(errors.QueueNotFound, errors.MessageNotFound),
    )),
    ApiRoute("/v1/queue/history/{queue}", history, methods=["GET"], operation=Operation(
        "queue.history", "A queue's published, acked and dead-lettered counts and its depth, per minute",
        extension=True, request=QueueOnlyRequest, response=schemas.QueueHistory, params=(QUEUE_PARAM, _WINDOW),
        errors=(errors.QueueNotFound,),
        description="Kept in Redis by the scripts that move messages (a day of minutes per queue), so every "
        "process agrees. `depth` (available + delayed + in flight) is the depth as the minute's first change "
        "left it, carried over quiet minutes, and the depth now for the last point; null before the first kept.",
    )),
    ApiRoute("/v1/queue/overview", overview, methods=["GET"], operation=Operation(
        "queue.overview", "The project's queues with their counts and message counters, in name order", extension=True,
        response=schemas.QueueOverview, params=page_query(MAX_OVERVIEW, MAX_OVERVIEW),
    )),
]
