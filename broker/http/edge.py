"""The HTTP edge: request ids, bounded body reading, decoding into Structs, JSON responses, and the one
handler that renders every error in the contract's shape."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker import errors
from broker.http.observe import finished, route_of, started
from broker.schemas import PATTERN_RULES, QUEUE_NAME_PATTERN, QUEUE_NAME_RULE, ErrorBody, ErrorResponse
from broker.store.failures import store_failure

log = logging.getLogger("broker.http.edge")
T = TypeVar("T")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_QUEUE_RE = re.compile(QUEUE_NAME_PATTERN)
_FIELD_RE = re.compile(r" - at `\$(.*)`$")
_encoder = msgspec.json.Encoder()
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


class RequestIds:
    """New request ids: 32 hex digits, a random per-process prefix and a counter (as unique as a uuid4,
    without a system call per request). A forked child draws its own prefix."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._prefix = os.urandom(10).hex()
        self._counter = itertools.count(int.from_bytes(os.urandom(5), "big"))

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFF:012x}"


_request_ids = RequestIds()


def new_request_id() -> str:
    """A fresh request id (for answers given before a request is parsed: ``broker.http.server``)."""
    return _request_ids.new()


class JSON(Response):
    media_type = "application/json"

    def __init__(self, content: Any, status_code: int = 200, headers: dict[str, str] | None = None):
        super().__init__(_encoder.encode(content), status_code=status_code, headers=headers)


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def error_response(exc: errors.BrokerError, rid: str) -> Response:
    body = ErrorResponse(error=ErrorBody(code=exc.code, message=exc.message, request_id=rid, field=exc.field))
    return Response(
        _encoder.encode(body),
        status_code=exc.status,
        headers={**exc.headers, "x-request-id": rid},
        media_type="application/json",
    )


_HTTP_ERRORS: dict[int, type[errors.BrokerError]] = {
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
}


def contract_error(exc: Exception, rid: str) -> errors.BrokerError:
    """The contract error a failed request answers with, logged once: contract errors as they are, Starlette's
    HTTP errors (404/405/413) by status, store failures by the one table (broker/store/failures.py), anything
    else 500 with its traceback in the log only."""
    if isinstance(exc, HTTPException):
        cls = _HTTP_ERRORS.get(exc.status_code, errors.ValidationError)
        return cls("no such route" if exc.status_code == 404 else None, headers=dict(exc.headers or {}))
    mapped = store_failure(exc)
    if mapped is not exc and isinstance(mapped, errors.InternalError):
        log.error("request %s failed", rid, exc_info=exc)
    elif mapped.status >= 500:
        log.warning("request %s: %s %s", rid, mapped.code, mapped.message)
    return mapped


async def handle_error(request: Request, exc: Exception) -> Response:
    """The one handler of the Starlette routes (the lean path uses :func:`contract_error` too)."""
    rid = request_id(request)
    return error_response(contract_error(exc, rid), rid)


def assign_request_id(scope: Scope) -> str:
    """The request's id: a sane incoming ``X-Request-Id``, else a new one; kept in the scope's state."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return take_request_id(scope, value)
    return take_request_id(scope, None)


def take_request_id(scope: Scope, incoming: bytes | None) -> str:
    """The request's id from its ``X-Request-Id`` header value (``incoming``) if sane, else a new one."""
    rid = ""
    if incoming is not None:
        candidate = incoming.decode("latin-1")
        if _REQUEST_ID_RE.match(candidate):
            rid = candidate
    rid = rid or _request_ids.new()
    scope.setdefault("state", {})["request_id"] = rid
    return rid


class RequestContext:
    """Pure ASGI middleware: assigns the request id, sets ``X-Request-Id`` on every response, and turns
    any exception that escaped the handlers into a 500 in the contract's shape."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = started()
        rid = assign_request_id(scope)
        header = (b"x-request-id", rid.encode())
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("request %s failed", rid, extra={"request_id": rid})
            if not status:
                status = 500
                response = error_response(errors.InternalError(), rid)
                await response(scope, receive, send)
        state = scope.get("state", {})
        ctx = state.get("ctx")
        finished(scope, rid, route_of(scope), status or 500, start, state.get("project"),
                 getattr(ctx, "tracing", None))


#: How often the body deadlines are checked (at most; more often for a shorter timeout).
BODY_SWEEP_SECONDS = 1.0


class BodyDeadline:
    """Ends the body reads that take longer than ``timeout`` seconds: a client that declares a body and
    never sends it would otherwise hold a task and a connection for ever. One sweep a second per process
    cancels the late reads, which answer 400; a request pays two dict operations, not a timer of its own."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._reading: dict[asyncio.Task[Any], float] = {}
        self._late: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    async def within(self, reading: Coroutine[Any, Any, bytes]) -> bytes:
        """Run ``reading`` (``read_limited`` or ``receive_limited``) within the deadline."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            return await reading
        self._reading[task] = loop.time()
        if self._sweeper is None:
            self._sweeper = loop.call_later(min(BODY_SWEEP_SECONDS, self.timeout), self._sweep)
        try:
            return await reading
        except asyncio.CancelledError:
            if task not in self._late:
                raise
            task.uncancel()
            raise errors.ValidationError(f"the request body did not arrive within {self.timeout:g} s") from None
        finally:
            del self._reading[task]
            self._late.discard(task)

    def _sweep(self) -> None:
        self._sweeper = None
        if not self._reading or self._loop is None:
            return
        cutoff = self._loop.time() - self.timeout
        for task, began in self._reading.items():
            if began <= cutoff and task not in self._late:
                self._late.add(task)
                task.cancel()
        self._sweeper = self._loop.call_later(min(BODY_SWEEP_SECONDS, self.timeout), self._sweep)


async def read_body(request: Request, limit: int, deadline: BodyDeadline | None = None) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` (before buffering it whole),
    and with 400 when it does not arrive within the ``deadline``."""
    try:
        length = request.headers.get("content-length")
        if deadline is None:
            return await read_limited(request.stream(), length, limit)
        return await deadline.within(read_limited(request.stream(), length, limit))
    except ClientDisconnect:
        raise errors.ValidationError("the client went away before sending the whole body") from None


def _check_declared(length: str | None, limit: int) -> None:
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise errors.ValidationError("invalid Content-Length header") from None
        if declared > limit:
            raise errors.PayloadTooLarge(f"request body exceeds {limit} bytes")


async def receive_limited(receive: Receive, length: str | None, limit: int) -> bytes:
    """The body of an ASGI request read from its ``receive``, under the rules of ``read_limited`` (the lean
    path: no chunk iterator in between; a body that came in one message is returned as it is)."""
    _check_declared(length, limit)
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise errors.ValidationError("the client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(f"request body exceeds {limit} bytes")
        if not message.get("more_body", False):
            if not parts:
                return chunk  # type: ignore[no-any-return]
            parts.append(chunk)
            return b"".join(parts)
        parts.append(chunk)


async def read_limited(chunks: AsyncIterator[bytes], length: str | None, limit: int) -> bytes:
    """Collect ``chunks``, refusing with 413 a declared ``length`` or a running size over ``limit``."""
    _check_declared(length, limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(f"request body exceeds {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def field_of(message: str) -> str | None:
    """``Expected `int` - at `$.messages[3].delay_seconds``` -> ``messages[3].delay_seconds``."""
    match = _FIELD_RE.search(message)
    if not match:
        return None
    return match.group(1).lstrip(".") or None


def decode(body: bytes, type_: type[T]) -> T:
    """Decode a JSON body into ``type_``; every failure is a 400 naming the field."""
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    if not body.strip():
        body = b"{}"
    try:
        value: T = decoder.decode(body)
        return value
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = field_of(text)
        message = _FIELD_RE.sub("", text)
        if text.startswith("Object missing required field"):
            missing = text.split("`")[1]
            field = f"{field}.{missing}" if field else missing
        if "matching regex" in message:
            message = next((rule for pattern, rule in PATTERN_RULES.items() if repr(pattern)[1:-1] in message),
                           message)
        raise errors.ValidationError(message, field=field) from None
    except msgspec.DecodeError as exc:
        raise errors.ValidationError(f"malformed JSON body: {exc}") from None
    except RecursionError:
        raise errors.ValidationError("JSON body is nested too deeply") from None


def path_queue(request: Request, body_queue: str | None = None) -> str:
    """The ``{queue}`` path parameter, validated; a ``queue`` in the body must equal it."""
    name: str = request.path_params["queue"]
    if not _QUEUE_RE.match(name):
        raise errors.ValidationError(QUEUE_NAME_RULE, field="queue")
    if body_queue is not None and body_queue != name:
        raise errors.ValidationError("queue in the body must equal the queue in the path", field="queue")
    return name
