"""What the client's calls return: one msgspec Struct per answer of the contract (docs/api.md), with the
contract's field names. Payloads are decoded to plain Python values (``message.payload["order_id"]``),
times to timezone-aware ``datetime`` objects (UTC). Fields the server adds in a later version are ignored,
so an older client keeps working against a newer server; tests/client holds these to the server's schemas.

:class:`BatchMessage` and :class:`AckItem` are the items a caller may give to ``publish_batch`` and
``ack_batch`` (plain dicts with the same keys work too).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from msgspec import UNSET, Struct, UnsetType, field


class _Answer(Struct, kw_only=True):
    """Base of the answers: keyword-only, compared by value."""


# --- queues ---------------------------------------------------------------------------------------
class QueueRecord(_Answer):
    queue: str
    type: str
    dead_letter_queue: str | None
    max_retries: int
    message_retention_days: int
    visibility_timeout_default: int
    enable_priority: bool
    created_at: datetime


class QueueList(_Answer):
    items: list[QueueRecord]
    next_cursor: str | None = None


class QueueDeleted(_Answer):
    queue: str
    deleted: bool


class QueuePurged(_Answer):
    queue: str
    purged: int


class QueueStats(_Answer):
    queue: str
    available: int
    in_flight: int
    dlq: int
    delayed: int
    oldest_age_seconds: int | None


# --- messages -------------------------------------------------------------------------------------
class Published(_Answer):
    message_id: str


class PublishedBatch(_Answer):
    message_ids: list[str]


class QueueMessage(_Answer):
    """A message as consumed: ack, nack or extend it with its ``message_id`` and ``receipt``."""

    message_id: str
    payload: Any
    priority: int
    group_id: str | None
    attempts: int
    enqueued_at: datetime
    receipt: str
    lease_expires_at: datetime


class AckFailure(_Answer):
    """An ack carried by a consume that was not applied: ``code`` is ``MESSAGE_NOT_FOUND`` or ``LEASE_EXPIRED``,
    the error an ack of it would have had."""

    message_id: str
    code: str
    message: str


class NackedItem(_Answer):
    """A nack carried by a consume that was applied: requeued, or dead-lettered (``requeued`` false)."""

    message_id: str
    requeued: bool


class Consumed(_Answer):
    messages: list[QueueMessage]
    #: Only when the consume carried ``ack``: the ids acked.
    acked: list[str] | None = None
    #: Only when the consume carried ``nack``: the messages nacked.
    nacked: list[NackedItem] | None = None
    #: When the consume carried ``ack`` or ``nack``: the items that were not applied.
    failed: list[AckFailure] | None = None


class Acked(_Answer):
    message_id: str
    acked: bool


class AckedBatch(_Answer):
    queue: str
    acked: list[str]


class Nacked(_Answer):
    message_id: str
    nacked: bool
    requeued: bool


class Extended(_Answer):
    message_id: str
    receipt: str
    lease_expires_at: datetime


# --- dead letters ---------------------------------------------------------------------------------
class DeadLetter(_Answer):
    message_id: str
    payload: Any
    priority: int
    group_id: str | None
    attempts: int
    enqueued_at: datetime
    dead_lettered_at: datetime
    reason: str
    source_queue: str
    last_error: str | None = None


class DeadLetterList(_Answer):
    items: list[DeadLetter]
    next_cursor: str | None = None


class Redriven(_Answer):
    queue: str
    redriven: int


# --- push -----------------------------------------------------------------------------------------
class PushSubscription(_Answer):
    subscription_id: str
    queue: str
    url: str


class PushAttempt(_Answer):
    """One of a subscription's recent delivery attempts; ``outcome`` is success, failure or dead_lettered."""

    at: datetime
    message_id: str
    attempt: int
    outcome: str
    status: int | None
    error: str | None
    duration_ms: int


class PushSubscriptionInfo(_Answer):
    subscription_id: str
    queue: str
    url: str
    signed: bool
    max_retries: int | None
    visibility_timeout: int
    dead_letter_queue: str | None
    max_concurrency: int
    created_at: datetime
    updated_at: datetime
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    consecutive_failures: int
    disabled: bool
    recent_attempts: list[PushAttempt] = field(default_factory=list)  # newest first (absent from older servers)


class PushUnsubscribed(_Answer):
    subscription_id: str
    queue: str
    deleted: bool


class PushMessage(_Answer):
    """The body of a push delivery (what :func:`broker.client.webhooks.verify` returns)."""

    message_id: str
    payload: Any
    priority: int
    group_id: str | None
    attempts: int
    enqueued_at: datetime
    lease_expires_at: datetime


# --- what callers send ----------------------------------------------------------------------------
class BatchMessage(Struct, kw_only=True, omit_defaults=True):
    """One message of ``publish_batch``: the payload (any JSON value but null) and its options."""

    payload: Any
    delay_seconds: float | UnsetType = UNSET
    priority: int | UnsetType = UNSET
    group_id: str | UnsetType = UNSET
    idempotency_key: str | UnsetType = UNSET


class AckItem(Struct, kw_only=True, omit_defaults=True):
    """One message of ``ack_batch`` (a :class:`QueueMessage` can be given instead)."""

    message_id: str
    receipt: str | UnsetType = UNSET
