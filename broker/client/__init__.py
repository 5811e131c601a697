"""The Python client of the queue service (docs/client.md): :class:`Client` (blocking) and
:class:`AsyncClient` (asyncio) with one method per capability of the HTTP contract, :class:`Consumer` and
:class:`AsyncConsumer` that run a handler for every message, and :mod:`broker.client.webhooks` for push
receivers. It imports nothing of the server: a program that only talks to a server needs only this."""

from __future__ import annotations

from broker.client.aio import AsyncClient
from broker.client.consumer import AsyncConsumer, Consumer
from broker.client.errors import (
    BrokerError,
    Conflict,
    ConnectionFailed,
    IdempotencyKeyReused,
    InternalError,
    LeaseExpired,
    MessageNotFound,
    NotFound,
    PayloadTooLarge,
    QueueAlreadyExists,
    QueueInUse,
    QueueNotFound,
    RateLimited,
    SubscriptionNotFound,
    Unauthorized,
    Unavailable,
    ValidationError,
)
from broker.client.models import (
    AckItem,
    BatchMessage,
    DeadLetter,
    PushMessage,
    QueueMessage,
    QueueRecord,
    QueueStats,
)
from broker.client.retry import RetryPolicy
from broker.client.sync import Client

__all__ = [
    "AckItem",
    "AsyncClient",
    "AsyncConsumer",
    "BatchMessage",
    "BrokerError",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Consumer",
    "DeadLetter",
    "IdempotencyKeyReused",
    "InternalError",
    "LeaseExpired",
    "MessageNotFound",
    "NotFound",
    "PayloadTooLarge",
    "PushMessage",
    "QueueAlreadyExists",
    "QueueInUse",
    "QueueMessage",
    "QueueNotFound",
    "QueueRecord",
    "QueueStats",
    "RateLimited",
    "RetryPolicy",
    "SubscriptionNotFound",
    "Unauthorized",
    "Unavailable",
    "ValidationError",
]
