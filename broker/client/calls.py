"""One function per capability of the contract, building the HTTP request it takes (a :class:`Call`): method,
path, JSON body, query, how to decode the answer, and whether the request may be sent again when its answer
was lost. :class:`~broker.client.Client` and :class:`~broker.client.AsyncClient` expose these same functions
as their methods (their signatures are these), and differ only in how they send a call.

Arguments are the contract's fields (docs/api.md): the queue first, positional; everything else by keyword;
an argument left at ``None`` is not sent (the server's default applies). ``publish`` and ``publish_batch``
get an idempotency key when none is given, made once per call, so that a retried call never stores a message
twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import msgspec
from msgspec import UNSET, UnsetType

from broker.client.models import (
    Acked,
    AckedBatch,
    AckItem,
    BatchMessage,
    Consumed,
    DeadLetterList,
    Extended,
    Nacked,
    Published,
    PublishedBatch,
    PushSubscription,
    PushSubscriptionInfo,
    PushUnsubscribed,
    QueueDeleted,
    QueueList,
    QueueMessage,
    QueuePurged,
    QueueRecord,
    QueueStats,
    Redriven,
)

T = TypeVar("T")
PREFIX = "/v1/queue"

_DECODERS: dict[Any, Callable[[bytes], Any]] = {}
_encode = msgspec.json.Encoder().encode


def decoder(kind: type[T]) -> Callable[[bytes], T]:
    """The JSON decoder of an answer type, built once."""
    found = _DECODERS.get(kind)
    if found is None:
        found = _DECODERS[kind] = msgspec.json.Decoder(kind).decode
    return found


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request of the contract, ready to send (and to send again, unchanged, on a retry)."""

    capability: str
    method: str
    path: str
    decode: Callable[[bytes], T]
    body: bytes | None = None
    params: Mapping[str, str | int] | None = None
    #: Sending it twice has the effect of sending it once (a read, or a call under an idempotency key): it
    #: may be retried when the connection broke after it was sent. Others are retried only when the server
    #: refused them (429, 503) or the request never left (connection refused).
    repeatable: bool = False
    #: How long the server may hold the answer back (a long poll), added to the read timeout.
    wait_seconds: float = 0.0


def new_idempotency_key() -> str:
    """A fresh idempotency key (random, 32 hex digits)."""
    return uuid.uuid4().hex


def _name(queue: str) -> str:
    return quote(queue, safe="")


def _body(fields: Mapping[str, Any]) -> bytes:
    """The JSON body of the fields that were given (``None`` and ``UNSET`` are left out)."""
    return _encode({k: v for k, v in fields.items() if v is not None and v is not UNSET})


def _time(value: datetime | str | None) -> str | None:
    """An RFC 3339 UTC time with milliseconds, as the server writes them (a naive datetime is local time)."""
    if value is None or isinstance(value, str):
        return value
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _page(cursor: str | None, limit: int | None) -> dict[str, str | int] | None:
    params: dict[str, str | int] = {}
    if cursor is not None:
        params["cursor"] = cursor
    if limit is not None:
        params["limit"] = limit
    return params or None


# --- queues ---------------------------------------------------------------------------------------
def create_queue(
    name: str,
    *,
    type: Literal["standard", "fifo"] | None = None,
    dead_letter_queue: str | None = None,
    max_retries: int | None = None,
    message_retention_days: int | None = None,
    visibility_timeout_default: int | None = None,
    enable_priority: bool | None = None,
    idempotency_key: str | None = None,
) -> Call[QueueRecord]:
    """Create a queue (``queue.create``); creating one that exists with the same configuration returns it."""
    body = _body({"name": name, "type": type, "dead_letter_queue": dead_letter_queue, "max_retries": max_retries,
                  "message_retention_days": message_retention_days,
                  "visibility_timeout_default": visibility_timeout_default, "enable_priority": enable_priority,
                  "idempotency_key": idempotency_key})
    return Call("queue.create", "POST", f"{PREFIX}/create", decoder(QueueRecord), body, repeatable=True)


def get_queue(name: str) -> Call[QueueRecord]:
    """A queue's configuration (``queue.get``)."""
    return Call("queue.get", "GET", f"{PREFIX}/get/{_name(name)}", decoder(QueueRecord), repeatable=True)


def list_queues(*, cursor: str | None = None, limit: int | None = None) -> Call[QueueList]:
    """One page of the project's queues in name order (``queue.list``); ``next_cursor`` asks for the next."""
    return Call("queue.list", "GET", f"{PREFIX}/list", decoder(QueueList), params=_page(cursor, limit),
                repeatable=True)


def update_queue(
    name: str,
    *,
    dead_letter_queue: str | UnsetType | None = UNSET,
    max_retries: int | None = None,
    message_retention_days: int | None = None,
    visibility_timeout_default: int | None = None,
    enable_priority: bool | None = None,
    idempotency_key: str | None = None,
) -> Call[QueueRecord]:
    """Change a queue's settings (``queue.update``); ``dead_letter_queue=None`` removes its dead-letter queue."""
    fields: dict[str, Any] = {"max_retries": max_retries, "message_retention_days": message_retention_days,
                              "visibility_timeout_default": visibility_timeout_default,
                              "enable_priority": enable_priority, "idempotency_key": idempotency_key}
    body = {k: v for k, v in fields.items() if v is not None}
    if dead_letter_queue is not UNSET:
        body["dead_letter_queue"] = dead_letter_queue
    return Call("queue.update", "PATCH", f"{PREFIX}/update/{_name(name)}", decoder(QueueRecord), _encode(body),
                repeatable=True)


def delete_queue(name: str) -> Call[QueueDeleted]:
    """Delete a queue with its messages (``queue.delete``); ``deleted`` is false when there was none."""
    return Call("queue.delete", "DELETE", f"{PREFIX}/delete/{_name(name)}", decoder(QueueDeleted), repeatable=True)


def purge_queue(name: str, *, idempotency_key: str | None = None) -> Call[QueuePurged]:
    """Delete a queue's available, delayed and in-flight messages (``queue.purge``)."""
    return Call("queue.purge", "POST", f"{PREFIX}/purge/{_name(name)}", decoder(QueuePurged),
                _body({"idempotency_key": idempotency_key}), repeatable=idempotency_key is not None)


def stats(name: str) -> Call[QueueStats]:
    """A queue's counts (``queue.stats``)."""
    return Call("queue.stats", "GET", f"{PREFIX}/stats/{_name(name)}", decoder(QueueStats), repeatable=True)


# --- messages -------------------------------------------------------------------------------------
def publish(
    queue: str,
    *,
    payload: Any,
    delay_seconds: float | None = None,
    priority: int | None = None,
    group_id: str | None = None,
    idempotency_key: str | None = None,
) -> Call[Published]:
    """Publish one message (``queue.publish``); without an ``idempotency_key`` the call makes one."""
    body = _body({"queue": queue, "payload": payload, "delay_seconds": delay_seconds, "priority": priority,
                  "group_id": group_id, "idempotency_key": idempotency_key or new_idempotency_key()})
    return Call("queue.publish", "POST", f"{PREFIX}/publish", decoder(Published), body, repeatable=True)


def publish_batch(
    queue: str,
    *,
    messages: Iterable[BatchMessage | Mapping[str, Any]],
    idempotency_key: str | None = None,
) -> Call[PublishedBatch]:
    """Publish up to 1,000 messages at once, all or nothing (``queue.publish_batch``); each item is a
    :class:`BatchMessage` or a dict with its keys (``payload`` and the options). Without an ``idempotency_key``
    the call makes one. A payload given as ``msgspec.Raw`` is sent as the JSON text it holds."""
    items = messages if isinstance(messages, list) else list(messages)
    body = _encode({"queue": queue, "messages": items, "idempotency_key": idempotency_key or new_idempotency_key()})
    return Call("queue.publish_batch", "POST", f"{PREFIX}/publish_batch", decoder(PublishedBatch), body,
                repeatable=True)


def consume(
    queue: str,
    *,
    max_messages: int | None = None,
    visibility_timeout: float | None = None,
    wait_seconds: float | None = None,
    ack: Iterable[QueueMessage | AckItem | Mapping[str, Any]] | None = None,
    nack: Iterable[QueueMessage | Mapping[str, Any]] | None = None,
) -> Call[Consumed]:
    """Lease up to ``max_messages`` messages (``queue.consume``), waiting up to ``wait_seconds`` for one. When an
    answer is lost, the messages it leased are delivered again once their lease ends: repeating is safe.

    ``ack`` (an extension): up to 100 messages to ack first, in the same call (items as for :func:`ack_batch`);
    each is acked on its own, and the answer's ``acked`` and ``failed`` say which were. Repeating such a call is
    safe when every item names its receipt (an ack already applied then fails as ``MESSAGE_NOT_FOUND``, and a
    later lease of the message is not touched); without a receipt it is not repeated.

    ``nack`` (an extension): up to 100 messages to nack after the acks, in the same call: each a
    :class:`QueueMessage` (nacked with requeue and no delay) or a mapping with ``message_id`` and optionally
    ``receipt``, ``requeue`` and ``delay_seconds`` (as for :func:`nack`); the answer's ``nacked`` and ``failed``
    say which were. Repeated on the same terms as the acks."""
    items = None if ack is None else [_ack_item(m) for m in ack]
    nacks = None if nack is None else [_ack_item(m) for m in nack]
    body = _body({"queue": queue, "max_messages": max_messages, "visibility_timeout": visibility_timeout,
                  "wait_seconds": wait_seconds, "ack": items, "nack": nacks})
    repeatable = all(_receipt_of(m) for m in [*(items or ()), *(nacks or ())])
    return Call("queue.consume", "POST", f"{PREFIX}/consume", decoder(Consumed), body, repeatable=repeatable,
                wait_seconds=wait_seconds or 0.0)


def ack(
    queue: str, *, message_id: str, receipt: str | None = None, idempotency_key: str | None = None
) -> Call[Acked]:
    """Delete a consumed message (``queue.ack``)."""
    body = _body({"queue": queue, "message_id": message_id, "receipt": receipt, "idempotency_key": idempotency_key})
    return Call("queue.ack", "POST", f"{PREFIX}/ack", decoder(Acked), body, repeatable=idempotency_key is not None)


def _ack_item(item: QueueMessage | AckItem | Mapping[str, Any]) -> Any:
    if isinstance(item, QueueMessage):
        return AckItem(message_id=item.message_id, receipt=item.receipt)
    return item


def _receipt_of(item: Any) -> Any:
    return item.receipt if isinstance(item, AckItem) else item.get("receipt")


def ack_batch(
    queue: str,
    *,
    messages: Iterable[QueueMessage | AckItem | Mapping[str, Any]],
    idempotency_key: str | None = None,
) -> Call[AckedBatch]:
    """Ack up to 100 messages at once, all or nothing (``queue.ack_batch``, an extension); the items are
    consumed messages (their receipts are sent), :class:`AckItem` or dicts with ``message_id``/``receipt``."""
    body = _body({"queue": queue, "messages": [_ack_item(m) for m in messages], "idempotency_key": idempotency_key})
    return Call("queue.ack_batch", "POST", f"{PREFIX}/ack_batch", decoder(AckedBatch), body,
                repeatable=idempotency_key is not None)


def nack(
    queue: str,
    *,
    message_id: str,
    requeue: bool | None = None,
    delay_seconds: float | None = None,
    receipt: str | None = None,
    idempotency_key: str | None = None,
) -> Call[Nacked]:
    """Give a consumed message back (``queue.nack``): available again after ``delay_seconds`` (while it has
    retries left), or dead-lettered at once with ``requeue=False``."""
    body = _body({"queue": queue, "message_id": message_id, "requeue": requeue, "delay_seconds": delay_seconds,
                  "receipt": receipt, "idempotency_key": idempotency_key})
    return Call("queue.nack", "POST", f"{PREFIX}/nack", decoder(Nacked), body, repeatable=idempotency_key is not None)


def extend(
    queue: str, *, message_id: str, visibility_timeout: float, receipt: str | None = None
) -> Call[Extended]:
    """Move a lease's end to ``visibility_timeout`` seconds from now (``queue.extend``, an extension)."""
    body = _body({"queue": queue, "message_id": message_id, "visibility_timeout": visibility_timeout,
                  "receipt": receipt})
    return Call("queue.extend", "POST", f"{PREFIX}/extend", decoder(Extended), body, repeatable=True)


# --- dead letters ---------------------------------------------------------------------------------
def dlq_list(queue: str, *, cursor: str | None = None, limit: int | None = None) -> Call[DeadLetterList]:
    """One page of a queue's dead letters, oldest first (``queue.dlq.list``)."""
    return Call("queue.dlq.list", "GET", f"{PREFIX}/dlq/list/{_name(queue)}", decoder(DeadLetterList),
                params=_page(cursor, limit), repeatable=True)


def dlq_redrive(
    queue: str,
    *,
    message_id: str | None = None,
    since: datetime | str | None = None,
    max_messages: int | None = None,
    idempotency_key: str | None = None,
) -> Call[Redriven]:
    """Move dead letters back to their queue (``queue.dlq.redrive``): one by ``message_id``, or all (those
    dead-lettered at or after ``since``, at most ``max_messages``)."""
    body = _body({"message_id": message_id, "since": _time(since), "max_messages": max_messages,
                  "idempotency_key": idempotency_key})
    return Call("queue.dlq.redrive", "POST", f"{PREFIX}/dlq/redrive/{_name(queue)}", decoder(Redriven), body,
                repeatable=idempotency_key is not None)


# --- push -----------------------------------------------------------------------------------------
def push_subscribe(
    queue: str,
    *,
    url: str,
    secret: str | None = None,
    max_retries: int | None = None,
    visibility_timeout: int | None = None,
    dead_letter_queue: str | None = None,
    max_concurrency: int | None = None,
    idempotency_key: str | None = None,
) -> Call[PushSubscription]:
    """Deliver the queue's messages by POST to ``url`` (``queue.push_subscribe``); calling again replaces the
    subscription. ``max_concurrency`` is an extension."""
    body = _body({"url": url, "secret": secret, "max_retries": max_retries, "visibility_timeout": visibility_timeout,
                  "dead_letter_queue": dead_letter_queue, "max_concurrency": max_concurrency,
                  "idempotency_key": idempotency_key})
    return Call("queue.push_subscribe", "POST", f"{PREFIX}/push_subscribe/{_name(queue)}", decoder(PushSubscription),
                body, repeatable=True)


def push_subscription(queue: str) -> Call[PushSubscriptionInfo]:
    """The queue's push subscription without its secret, and its delivery state (an extension)."""
    return Call("queue.push_subscription.get", "GET", f"{PREFIX}/push_subscription/{_name(queue)}",
                decoder(PushSubscriptionInfo), repeatable=True)


def push_unsubscribe(queue: str) -> Call[PushUnsubscribed]:
    """Remove the queue's push subscription (an extension)."""
    return Call("queue.push_subscription.delete", "DELETE", f"{PREFIX}/push_subscription/{_name(queue)}",
                decoder(PushUnsubscribed))
