"""queue.publish, publish_batch, consume, ack, nack, and the extensions ack_batch and extend.

Each handler takes the context, the authenticated project and the raw body, and returns a response
Struct; ``broker.http.fastpath`` serves them both as Starlette routes and on the lean path of the hot POSTs.
"""

from __future__ import annotations

import asyncio
import hashlib

import msgspec

from broker import errors
from broker.http.context import Context
from broker.http.edge import field_of
from broker.http.fastpath import BodyRoute
from broker.http.operation import Link, Operation, queue_links
from broker.schemas import (
    MAX_BATCH_BYTES,
    MAX_PAYLOAD_BYTES,
    AckBatchRequest,
    Acked,
    AckedBatch,
    AckFailure,
    AckRequest,
    Consumed,
    ConsumeRequest,
    Extended,
    ExtendRequest,
    Nacked,
    NackedItem,
    NackRequest,
    PublishBatchRequest,
    Published,
    PublishedBatch,
    PublishRequest,
    rfc3339,
)
from broker.store.queues import OutgoingMessage, fingerprint

_encode_payload = msgspec.json.Encoder().encode
_decode_payload = msgspec.json.Decoder().decode


def compact_payload(payload: msgspec.Raw, field: str = "payload") -> bytes:
    """The stored text of a payload: as sent when it is compact JSON without escapes, else decoded and encoded
    compactly. Either way a compact JSON text every strict reader accepts: the request decoder only checks a
    payload's syntax, so the payload is decoded here, and one with invalid UTF-8 or a number beyond a 64-bit
    float (``1e400``) is refused with 400 naming ``field`` instead of being stored and handed to every consumer."""
    text = bytes(payload)
    try:
        value = _decode_payload(text)
    except msgspec.DecodeError as exc:  # and msgspec.ValidationError, its subclass: a number out of range
        inner = (field_of(str(exc)) or "").split("[...]")[0]  # an object's member shows as [...]: cut there
        where = f"{field}{'' if not inner or inner.startswith('[') else '.'}{inner}"
        if isinstance(exc, msgspec.ValidationError):
            message = "payload has a number out of range (numbers must fit a 64-bit float)"
        else:
            message = f"payload is not valid JSON: {str(exc).partition(' - at `')[0]}"
        raise errors.ValidationError(message, field=where) from None
    except RecursionError:
        raise errors.ValidationError("payload is nested too deeply", field=field) from None
    # Whitespace between tokens, or an escape in a string: encoded again (five byte scans beat a regex).
    if b" " in text or b"\\" in text or b"\n" in text or b"\r" in text or b"\t" in text:
        return _encode_payload(value)
    return text


def _outgoing(
    queue: str, payload: msgspec.Raw, delay_seconds: float, priority: int, group_id: str | None,
    idempotency_key: str | None, field: str,
) -> OutgoingMessage:
    """Validate and encode one message; its fingerprint covers everything but the key itself."""
    encoded = compact_payload(payload, f"{field}payload")
    if encoded == b"null":
        raise errors.ValidationError("payload is required and must not be null", field=f"{field}payload")
    if len(encoded) > MAX_PAYLOAD_BYTES:
        raise errors.PayloadTooLarge(
            f"payload is {len(encoded)} bytes as compact JSON; the limit is {MAX_PAYLOAD_BYTES}",
            field=f"{field}payload",
        )
    delay_ms = round(delay_seconds * 1000)
    fp = ""
    if idempotency_key is not None:
        digest = hashlib.sha256()
        for part in (queue.encode(), encoded, str(delay_ms).encode(), str(priority).encode(),
                     (group_id or "").encode()):
            digest.update(part)
            digest.update(b"\0")
        fp = digest.hexdigest()
    return OutgoingMessage(encoded, delay_ms, priority, group_id, fp, idempotency_key)


def _batch_fingerprint(queue: str, messages: list[OutgoingMessage]) -> str:
    """A digest of a publish_batch request without its own idempotency key, over the stored payload texts."""
    content = [queue, [[msgspec.Raw(m.payload), m.delay_ms, m.priority, m.group_id, m.idempotency_key]
                       for m in messages]]
    return hashlib.sha256(b"queue.publish_batch\0" + _encode_payload(content)).hexdigest()


async def publish(ctx: Context, project: str, body: bytes) -> Published:
    req = ctx.parse(body, PublishRequest)
    message = _outgoing(req.queue, req.payload, req.delay_seconds, req.priority, req.group_id, None, "")
    fp = ""
    if req.idempotency_key is not None:
        fp = _outgoing(req.queue, req.payload, req.delay_seconds, req.priority, req.group_id,
                       req.idempotency_key, "").fingerprint
    ids = await ctx.store.publish(
        project, req.queue, [message], batch=False, idempotency_key=req.idempotency_key, fp=fp
    )
    return Published(message_id=ids[0])


async def publish_batch(ctx: Context, project: str, body: bytes) -> PublishedBatch:
    req = ctx.parse(body, PublishBatchRequest)
    messages = [
        _outgoing(req.queue, m.payload, m.delay_seconds, m.priority, m.group_id, m.idempotency_key, f"messages[{i}].")
        for i, m in enumerate(req.messages)
    ]
    fp = _batch_fingerprint(req.queue, messages) if req.idempotency_key else ""
    ids = await ctx.store.publish(
        project, req.queue, messages, batch=True, idempotency_key=req.idempotency_key, fp=fp
    )
    return PublishedBatch(message_ids=ids)


async def consume(ctx: Context, project: str, body: bytes) -> Consumed:
    req = ctx.parse(body, ConsumeRequest, project)
    visibility_ms = None if req.visibility_timeout is None else round(req.visibility_timeout * 1000)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + req.wait_seconds
    acked: list[str] | msgspec.UnsetType = msgspec.UNSET
    nacked: list[NackedItem] | msgspec.UnsetType = msgspec.UNSET
    failed: list[AckFailure] | msgspec.UnsetType = msgspec.UNSET
    if req.ack is not None or req.nack is not None:
        # The acks and nacks go with the first attempt only (the one that is charged); a long poll's later
        # attempts are plain claims, so a wait never applies them twice.
        messages, wake_ms, all_acked, failed, all_nacked = await ctx.store.ack_and_claim(
            project, req.queue, [(m.message_id, m.receipt) for m in req.ack or ()], req.max_messages, visibility_ms,
            req.nack or (),
        )
        if req.ack is not None:
            acked = all_acked
        if req.nack is not None:
            nacked = all_nacked
    else:
        messages, wake_ms = await ctx.store.claim(project, req.queue, req.max_messages, visibility_ms)
    while True:
        remaining = deadline - loop.time()
        if messages or remaining <= 0:
            return Consumed(messages=messages, acked=acked, nacked=nacked, failed=failed)
        timeout = remaining
        if wake_ms >= 0:
            timeout = min(timeout, max(0.005, (wake_ms - ctx.store.clock()) / 1000))
        await ctx.notifier.wait(project, req.queue, timeout)
        try:
            messages, wake_ms = await ctx.store.claim(project, req.queue, req.max_messages, visibility_ms,
                                                      charged=False)
        except errors.Unavailable:
            messages, wake_ms = [], -1  # the store went away during the wait: an empty answer, as at a deadline


async def ack(ctx: Context, project: str, body: bytes) -> Acked:
    req = ctx.parse(body, AckRequest)
    fp = fingerprint("queue.ack", req) if req.idempotency_key else ""
    await ctx.store.ack(
        project, req.queue, [(req.message_id, req.receipt)], idempotency_key=req.idempotency_key, fp=fp
    )
    return Acked(message_id=req.message_id, acked=True)


async def ack_batch(ctx: Context, project: str, body: bytes) -> AckedBatch:
    req = ctx.parse(body, AckBatchRequest)
    fp = fingerprint("queue.ack_batch", req) if req.idempotency_key else ""
    acked = await ctx.store.ack(
        project,
        req.queue,
        [(m.message_id, m.receipt) for m in req.messages],
        field="messages",
        capability="queue.ack_batch",
        idempotency_key=req.idempotency_key,
        fp=fp,
    )
    return AckedBatch(queue=req.queue, acked=acked)


async def nack(ctx: Context, project: str, body: bytes) -> Nacked:
    req = ctx.parse(body, NackRequest)
    fp = fingerprint("queue.nack", req) if req.idempotency_key else ""
    requeued = await ctx.store.nack(
        project,
        req.queue,
        req.message_id,
        receipt=req.receipt,
        requeue=req.requeue,
        delay_ms=round(req.delay_seconds * 1000),
        idempotency_key=req.idempotency_key,
        fp=fp,
    )
    return Nacked(message_id=req.message_id, nacked=True, requeued=requeued)


async def extend(ctx: Context, project: str, body: bytes) -> Extended:
    req = ctx.parse(body, ExtendRequest)
    receipt, deadline = await ctx.store.extend(
        project, req.queue, req.message_id, req.receipt, round(req.visibility_timeout * 1000)
    )
    return Extended(message_id=req.message_id, receipt=receipt, lease_expires_at=rfc3339(deadline))


_ON_A_QUEUE = (errors.QueueNotFound,)
_ON_A_LEASE = (errors.QueueNotFound, errors.MessageNotFound, errors.LeaseExpired)
_REUSED = (errors.IdempotencyKeyReused,)
_CHARGED = (errors.InsufficientCredit,)  # lua/include/account.lua (docs/admin.md)
_STORES = (errors.InsufficientCredit, errors.QuotaExceeded)
_TO_CONSUME = queue_links("$request.body#/queue", "queue.consume", in_body=True)
_FIRST_LEASE = (("queue", "$request.body#/queue"), ("message_id", "$response.body#/messages/0/message_id"),
                ("receipt", "$response.body#/messages/0/receipt"))
_ON_THE_LEASE = tuple(Link(op, "The first message delivered, under its lease.", request_body=_FIRST_LEASE)
                      for op in ("queue.ack", "queue.nack", "queue.extend"))

BODY_ROUTES = [
    BodyRoute("/v1/queue/publish", publish, operation=Operation(
        "queue.publish", "Publish a message", tag="messages",
        request=PublishRequest, response=Published, errors=(*_ON_A_QUEUE, *_REUSED, *_STORES),
        description="`payload` is any JSON value but null, at most 256 KiB as compact JSON (else 413); "
        "`delay_seconds` must be shorter than the queue's retention period.",
        links=_TO_CONSUME,
    )),
    BodyRoute("/v1/queue/publish_batch", publish_batch, limit=MAX_BATCH_BYTES, operation=Operation(
        "queue.publish_batch", "Publish up to 1000 messages, all or nothing", tag="messages",
        request=PublishBatchRequest, response=PublishedBatch, errors=(*_ON_A_QUEUE, *_REUSED, *_STORES),
        description="One invalid message is a 400 naming `messages[i].field`, and nothing is stored. "
        "The body is at most 4 MiB.",
        links=_TO_CONSUME,
    )),
    BodyRoute("/v1/queue/consume", consume, operation=Operation(
        "queue.consume", "Lease up to `max_messages` available messages (long-polls with `wait_seconds`)",
        tag="messages", request=ConsumeRequest, response=Consumed, errors=(*_ON_A_QUEUE, *_CHARGED),
        description="429 also when the process already serves its maximum of waiting long polls. "
        "Extension: `ack` (up to 100 `{message_id, receipt?}`) acks those messages first, in the same atomic "
        "step, each on its own: the answer then lists `acked` ids and `failed` items (`message_id`, `code` "
        "`MESSAGE_NOT_FOUND` or `LEASE_EXPIRED`, `message`); a failed item changes nothing and fails nothing "
        "else. The acks are applied once, before the lease and before any wait, and the call is charged as a "
        "consume plus an ack_batch.",
        links=_ON_THE_LEASE,
    )),
    BodyRoute("/v1/queue/ack", ack, operation=Operation(
        "queue.ack", "Delete a leased message", tag="messages",
        request=AckRequest, response=Acked, errors=(*_ON_A_LEASE, *_REUSED, *_CHARGED),
    )),
    BodyRoute("/v1/queue/ack_batch", ack_batch, operation=Operation(
        "queue.ack_batch", "Delete up to 100 leased messages, all or nothing", extension=True,
        request=AckBatchRequest, response=AckedBatch, errors=(*_ON_A_LEASE, *_REUSED, *_CHARGED),
    )),
    BodyRoute("/v1/queue/nack", nack, operation=Operation(
        "queue.nack", "Give a leased message back (retry it, or dead-letter it)", tag="messages",
        request=NackRequest, response=Nacked, errors=(*_ON_A_LEASE, *_REUSED, *_CHARGED),
    )),
    BodyRoute("/v1/queue/extend", extend, operation=Operation(
        "queue.extend", "Move a lease's end to `visibility_timeout` seconds from now (a heartbeat)", extension=True,
        request=ExtendRequest, response=Extended, errors=(*_ON_A_LEASE, *_CHARGED),
    )),
]
routes = [route.starlette_route() for route in BODY_ROUTES]
