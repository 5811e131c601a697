"""Every request and response body of the contract, as msgspec Structs: the single source of truth of
the wire format. Limits live here as ``Meta`` constraints so that decoding enforces them and the
OpenAPI document can be generated from them. Wire forms only; the stored form of a message is defined
by ``lua/include/message.lua``.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

# --- limits (documented in docs/api.md) -----------------------------------------------------------
# Python's "$" also matches before a final newline ("jobs\n" would pass); the lookahead refuses that and
# means nothing to the JSON Schema (ECMA) reading of the pattern.
# A FIFO queue may end its name in ".fifo", as SQS requires of its FIFO queues: one name in both APIs (docs/sqs.md).
QUEUE_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,80}$(?!\n)|^[A-Za-z0-9_-]{1,75}\.fifo$(?!\n)"
GROUP_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,128}$(?!\n)"
QUEUE_NAME_RULE = ("queue names are 1 to 80 characters: letters, digits, '_' and '-' (a FIFO queue's may end in "
                   "'.fifo')")
GROUP_ID_RULE = "group ids are 1 to 128 characters, no control characters"
#: What a refused pattern means, in words (error messages name the rule, not the regex).
PATTERN_RULES = {QUEUE_NAME_PATTERN: QUEUE_NAME_RULE, GROUP_ID_PATTERN: GROUP_ID_RULE}
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_BATCH_MESSAGES = 1000
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_CONSUME = 100
MAX_WAIT_SECONDS = 20
MAX_VISIBILITY_SECONDS = 43200
MAX_NACK_DELAY_SECONDS = 43200
MAX_ACK_BATCH = 100
MAX_IDEMPOTENCY_KEY = 256
MAX_MESSAGE_ID = 64
MAX_RECEIPT = 128
MAX_URL = 2048
MAX_SECRET = 512

QueueName = Annotated[str, Meta(pattern=QUEUE_NAME_PATTERN,
                                 description="^[A-Za-z0-9_-]{1,80}$, or up to 75 of them and .fifo (FIFO queues)")]
GroupId = Annotated[str, Meta(pattern=GROUP_ID_PATTERN, description="1..128 printable characters")]
IdempotencyKey = Annotated[str, Meta(min_length=1, max_length=MAX_IDEMPOTENCY_KEY)]
MessageId = Annotated[str, Meta(min_length=1, max_length=MAX_MESSAGE_ID)]
Receipt = Annotated[str, Meta(min_length=1, max_length=MAX_RECEIPT)]
Priority = Annotated[int, Meta(ge=0, le=9)]
MaxRetries = Annotated[int, Meta(ge=0, le=1000)]
RetentionDays = Annotated[int, Meta(ge=1, le=14)]
VisibilitySeconds = Annotated[float, Meta(ge=0, le=MAX_VISIBILITY_SECONDS)]
DelaySeconds = Annotated[float, Meta(ge=0, le=14 * 86400)]


def rfc3339(ms: int) -> str:
    """``2026-11-30T08:00:00.123Z`` from epoch milliseconds."""
    seconds, millis = divmod(int(ms), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


# --- queues ---------------------------------------------------------------------------------------
class CreateQueueRequest(Struct, kw_only=True):
    name: QueueName
    type: Literal["standard", "fifo"] = "standard"
    dead_letter_queue: QueueName | None = None
    max_retries: MaxRetries = 5
    message_retention_days: RetentionDays = 4
    visibility_timeout_default: Annotated[int, Meta(ge=0, le=MAX_VISIBILITY_SECONDS)] = 30
    enable_priority: bool = False
    idempotency_key: IdempotencyKey | None = None


class UpdateQueueRequest(Struct, kw_only=True):
    queue: QueueName | None = None
    dead_letter_queue: QueueName | msgspec.UnsetType | None = msgspec.UNSET
    max_retries: MaxRetries | msgspec.UnsetType = msgspec.UNSET
    message_retention_days: RetentionDays | msgspec.UnsetType = msgspec.UNSET
    visibility_timeout_default: Annotated[int, Meta(ge=0, le=MAX_VISIBILITY_SECONDS)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    enable_priority: bool | msgspec.UnsetType = msgspec.UNSET
    idempotency_key: IdempotencyKey | None = None


class QueueOnlyRequest(Struct, kw_only=True):
    """Body of purge, and of get, stats, delete and dlq.list, whose body may only echo the path's queue."""

    queue: QueueName | None = None
    idempotency_key: IdempotencyKey | None = None


class QueueRecord(Struct, kw_only=True):
    queue: str
    type: str
    dead_letter_queue: str | None
    max_retries: int
    message_retention_days: int
    visibility_timeout_default: int
    enable_priority: bool
    created_at: str


class QueueList(Struct, kw_only=True, omit_defaults=True):
    items: list[QueueRecord]
    next_cursor: str | None = None


class QueueDeleted(Struct, kw_only=True):
    queue: str
    deleted: bool


class QueuePurged(Struct, kw_only=True):
    queue: str
    purged: int


class QueueStats(Struct, kw_only=True):
    queue: str
    available: int
    in_flight: int
    dlq: int
    delayed: int
    oldest_age_seconds: int | None


# --- messages -------------------------------------------------------------------------------------
class PublishRequest(Struct, kw_only=True):
    queue: QueueName
    payload: msgspec.Raw  # checked JSON text, made compact by the handler (routes/messages.py)
    delay_seconds: DelaySeconds = 0
    priority: Priority = 0
    group_id: GroupId | None = None
    idempotency_key: IdempotencyKey | None = None


class BatchItem(Struct, kw_only=True):
    payload: msgspec.Raw
    delay_seconds: DelaySeconds = 0
    priority: Priority = 0
    group_id: GroupId | None = None
    idempotency_key: IdempotencyKey | None = None


class PublishBatchRequest(Struct, kw_only=True):
    queue: QueueName
    messages: Annotated[list[BatchItem], Meta(max_length=MAX_BATCH_MESSAGES)]
    idempotency_key: IdempotencyKey | None = None


class Published(Struct, kw_only=True):
    message_id: str


class PublishedBatch(Struct, kw_only=True):
    message_ids: list[str]


class AckItem(Struct, kw_only=True):
    message_id: MessageId
    receipt: Receipt | None = None


class NackItem(Struct, kw_only=True):
    """A nack carried by a consume: the fields of a nack request but the queue and the idempotency key."""

    message_id: MessageId
    requeue: bool = True
    delay_seconds: Annotated[float, Meta(ge=0, le=MAX_NACK_DELAY_SECONDS)] = 0
    receipt: Receipt | None = None


class ConsumeRequest(Struct, kw_only=True):
    queue: QueueName
    max_messages: Annotated[int, Meta(ge=1, le=MAX_CONSUME)] = 1
    visibility_timeout: VisibilitySeconds | None = None
    wait_seconds: Annotated[float, Meta(ge=0, le=MAX_WAIT_SECONDS)] = 0
    #: Extension: messages to ack before leasing (each on its own; the answer's ``acked`` and ``failed``).
    ack: Annotated[list[AckItem], Meta(max_length=MAX_ACK_BATCH)] | None = None
    #: Extension: messages to nack after the acks, before leasing (the answer's ``nacked`` and ``failed``).
    nack: Annotated[list[NackItem], Meta(max_length=MAX_ACK_BATCH)] | None = None


class MessageFields(Struct, kw_only=True):
    """The fields every outgoing form of a message starts with; the payload is the stored JSON text,
    written out as is."""

    message_id: str
    payload: msgspec.Raw
    priority: int
    group_id: str | None
    attempts: int
    enqueued_at: str


class QueueMessage(MessageFields, kw_only=True):
    """A message as consumed."""

    receipt: str
    lease_expires_at: str


class AckFailure(Struct, kw_only=True):
    """An ack carried by a consume that was not applied: the error an ack of it would have had."""

    message_id: str
    code: Literal["MESSAGE_NOT_FOUND", "LEASE_EXPIRED"]
    message: str


class NackedItem(Struct, kw_only=True):
    """A nack carried by a consume that was applied: requeued, or dead-lettered (``requeued`` false)."""

    message_id: str
    requeued: bool


class Consumed(Struct, kw_only=True):
    messages: list[QueueMessage]
    #: Only when the request carried ``ack`` (else absent): the ids acked.
    acked: list[str] | msgspec.UnsetType = msgspec.UNSET
    #: Only when the request carried ``nack`` (else absent): the messages nacked.
    nacked: list[NackedItem] | msgspec.UnsetType = msgspec.UNSET
    #: When the request carried ``ack`` or ``nack`` (else absent): the items that were not applied.
    failed: list[AckFailure] | msgspec.UnsetType = msgspec.UNSET


class AckRequest(Struct, kw_only=True):
    queue: QueueName
    message_id: MessageId
    receipt: Receipt | None = None
    idempotency_key: IdempotencyKey | None = None


class Acked(Struct, kw_only=True):
    message_id: str
    acked: bool


class AckBatchRequest(Struct, kw_only=True):
    """Extension: ack many messages in one call, all or nothing."""

    queue: QueueName
    messages: Annotated[list[AckItem], Meta(min_length=1, max_length=MAX_ACK_BATCH)]
    idempotency_key: IdempotencyKey | None = None


class AckedBatch(Struct, kw_only=True):
    queue: str
    acked: list[str]


class NackRequest(Struct, kw_only=True):
    queue: QueueName
    message_id: MessageId
    requeue: bool = True
    delay_seconds: Annotated[float, Meta(ge=0, le=MAX_NACK_DELAY_SECONDS)] = 0
    receipt: Receipt | None = None
    idempotency_key: IdempotencyKey | None = None


class Nacked(Struct, kw_only=True):
    message_id: str
    nacked: bool
    requeued: bool


class ExtendRequest(Struct, kw_only=True):
    """Extension: move a lease's deadline to now + visibility_timeout (heartbeat)."""

    queue: QueueName
    message_id: MessageId
    visibility_timeout: VisibilitySeconds
    receipt: Receipt | None = None


class Extended(Struct, kw_only=True):
    message_id: str
    receipt: str
    lease_expires_at: str


# --- dead letters ---------------------------------------------------------------------------------
class DeadLetter(MessageFields, kw_only=True, omit_defaults=True):
    dead_lettered_at: str
    reason: str
    source_queue: str
    last_error: str | None = None


class DeadLetterList(Struct, kw_only=True, omit_defaults=True):
    items: list[DeadLetter]
    next_cursor: str | None = None


class RedriveRequest(Struct, kw_only=True):
    queue: QueueName | None = None
    message_id: MessageId | None = None
    since: str | None = None
    max_messages: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None
    idempotency_key: IdempotencyKey | None = None


class Redriven(Struct, kw_only=True):
    queue: str
    redriven: int


# --- push -----------------------------------------------------------------------------------------
MAX_PUSH_CONCURRENCY = 100
DEFAULT_PUSH_CONCURRENCY = 10
DEFAULT_PUSH_VISIBILITY_SECONDS = 30


class PushSubscribeRequest(Struct, kw_only=True):
    queue: QueueName | None = None
    url: Annotated[str, Meta(min_length=1, max_length=MAX_URL)] | None = None
    forward_to: Annotated[str, Meta(min_length=1, max_length=MAX_URL)] | None = None
    secret: Annotated[str, Meta(min_length=1, max_length=MAX_SECRET)] | None = None
    max_retries: MaxRetries | None = None
    visibility_timeout: Annotated[int, Meta(ge=1, le=MAX_VISIBILITY_SECONDS)] | None = None
    dead_letter_queue: QueueName | None = None
    max_concurrency: Annotated[int, Meta(ge=1, le=MAX_PUSH_CONCURRENCY)] | None = None  # extension
    idempotency_key: IdempotencyKey | None = None


class PushSubscription(Struct, kw_only=True):
    subscription_id: str
    queue: str
    url: str


#: How many recent delivery attempts a subscription keeps (lua/include/push.lua's PUSH_LOG_SIZE).
PUSH_LOG_SIZE = 50


class PushAttempt(Struct, kw_only=True):
    """One settled delivery attempt of a push subscription, as kept in its log of recent attempts."""

    at: str
    message_id: str
    attempt: Annotated[int, Meta(description="The message's delivery attempt this was, 1 for the first.")]
    outcome: Annotated[Literal["success", "failure", "dead_lettered"], Meta(
        description="success: a 2xx answer; failure: retried later; dead_lettered: the retries were used up.")]
    status: Annotated[int | None, Meta(description="The HTTP status of the answer; null when none came back.")]
    error: Annotated[str | None, Meta(description="Why the attempt failed (its first 300 bytes); null on success.")]
    duration_ms: Annotated[int, Meta(description="From sending the request to the end of the answer, ms.")]


class PushSubscriptionInfo(Struct, kw_only=True):
    """Extension (GET /v1/queue/push_subscription/{queue}): the subscription without its secret, and
    its delivery state. ``max_retries`` is null when the subscription follows the queue's.
    ``recent_attempts``: its latest settled delivery attempts (at most 50), newest first."""

    subscription_id: str
    queue: str
    url: str
    signed: bool
    max_retries: int | None
    visibility_timeout: int
    dead_letter_queue: str | None
    max_concurrency: int
    created_at: str
    updated_at: str
    last_attempt_at: str | None
    last_status: int | None
    last_error: str | None
    consecutive_failures: int
    disabled: bool
    recent_attempts: list[PushAttempt]


class PushUnsubscribed(Struct, kw_only=True):
    """Extension (DELETE /v1/queue/push_subscription/{queue})."""

    subscription_id: str
    queue: str
    deleted: bool


class PushMessage(MessageFields, kw_only=True):
    """The body of a push delivery: the QueueMessage without its receipt."""

    lease_expires_at: str


# --- inspection (extensions: what the dashboard at /ui reads; nothing is leased or changed) ------------
PEEK_STATES = ("available", "delayed", "in_flight")
HISTORY_WINDOWS = {"1h": 60, "24h": 1440}  # window -> minutes
MAX_PEEK = 100
MAX_OVERVIEW = 1000


class PeekedMessage(MessageFields, kw_only=True):
    """A message as it sits, not leased: ``attempts`` in the current retry budget, ``deliveries`` ever."""

    state: str
    deliveries: int
    due_at: str
    lease_expires_at: str | None


class PeekPage(Struct, kw_only=True):
    queue: str
    state: str
    items: list[PeekedMessage]
    next_cursor: str | None


class InspectedMessage(PeekedMessage, kw_only=True):
    """One message wherever it is: ``held_in`` is the queue that holds it (a dead letter may wait in the
    dead-letter queue)."""

    queue: str
    held_in: str
    dead_lettered_at: str | None
    reason: str | None
    source_queue: str | None
    last_error: str | None


class HistoryPoint(Struct, kw_only=True):
    minute: str
    published: int
    acked: int
    dead_lettered: int
    push_success: int
    push_failure: int
    depth: int | None


class QueueHistory(Struct, kw_only=True):
    queue: str
    window: str
    points: list[HistoryPoint]


class QueueOverviewItem(Struct, kw_only=True):
    queue: str
    type: str
    available: int
    in_flight: int
    delayed: int
    dlq: int
    oldest_age_seconds: int | None
    published: int
    acked: int
    dead_lettered: int
    push_success: int
    push_failure: int
    push_dead_lettered: int
    published_per_minute: Annotated[float, Meta(description="Messages published per minute over the last 5 minutes "
                                                "(this one up to now), from the queue's history.")]
    acked_per_minute: Annotated[float, Meta(description="Messages acked per minute over the last 5 minutes.")]


class QueueOverview(Struct, kw_only=True):
    items: list[QueueOverviewItem]
    next_cursor: str | None


# --- errors and health ----------------------------------------------------------------------------
class ErrorBody(Struct, kw_only=True, omit_defaults=True):
    code: str
    message: str
    request_id: str
    field: str | None = None


class ErrorResponse(Struct, kw_only=True):
    error: ErrorBody


class Health(Struct, kw_only=True):
    status: str
