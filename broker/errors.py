"""The error hierarchy of the HTTP contract.

Every failure the service reports is a subclass of :class:`BrokerError` with a class-level ``status``
and ``code``; its docstring is the default message. One Starlette handler (``broker.http.app``) renders all
of them as ``{"error": {"code", "message", "request_id", "field"?}}``. Lua scripts fail with a reply
whose first word is one of these codes; :data:`ERRORS_BY_CODE` maps it back to the class.
"""

from __future__ import annotations

from typing import ClassVar


class BrokerError(Exception):
    """Internal error."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str | None = None, *, field: str | None = None, headers: dict[str, str] | None = None):
        self.message = message or (self.__doc__ or self.code).strip().splitlines()[0]
        self.field = field
        self.headers = headers or {}
        super().__init__(self.message)


class InternalError(BrokerError):
    """Internal error."""


class Unavailable(BrokerError):
    """The message store is unavailable; retry later."""

    status = 503
    code = "UNAVAILABLE"


class ValidationError(BrokerError):
    """The request is invalid."""

    status = 400
    code = "VALIDATION_ERROR"


class Unauthorized(BrokerError):
    """Missing, malformed or revoked API key."""

    status = 401
    code = "UNAUTHORIZED"


class InsufficientCredit(BrokerError):
    """The project's quota is exhausted."""

    status = 402
    code = "INSUFFICIENT_CREDIT"


class QuotaExceeded(InsufficientCredit):
    """A limit of the project (max_queues, max_messages, max_payload_bytes) would be exceeded."""

    code = "QUOTA_EXCEEDED"


class NotFound(BrokerError):
    """Not found."""

    status = 404
    code = "NOT_FOUND"


class QueueNotFound(NotFound):
    """Queue not found."""

    code = "QUEUE_NOT_FOUND"


class MessageNotFound(NotFound):
    """Message not found."""

    code = "MESSAGE_NOT_FOUND"


class SubscriptionNotFound(NotFound):
    """The queue has no push subscription."""

    code = "SUBSCRIPTION_NOT_FOUND"


class MethodNotAllowed(BrokerError):
    """Method not allowed on this route."""

    status = 405
    code = "METHOD_NOT_ALLOWED"


class Conflict(BrokerError):
    """Conflict."""

    status = 409
    code = "CONFLICT"


class QueueAlreadyExists(Conflict):
    """A queue with this name already exists with a different configuration."""

    code = "QUEUE_ALREADY_EXISTS"


class QueueInUse(Conflict):
    """The queue is used as a dead-letter queue by another queue or a push subscription."""

    code = "QUEUE_IN_USE"


class LeaseExpired(Conflict):
    """The message is not leased under this receipt (the lease ended or was replaced)."""

    code = "LEASE_EXPIRED"


class IdempotencyKeyReused(Conflict):
    """This idempotency key was already used with a different request."""

    code = "IDEMPOTENCY_KEY_REUSED"


class PayloadTooLarge(BrokerError):
    """The request or payload is larger than allowed."""

    status = 413
    code = "PAYLOAD_TOO_LARGE"


class HeadersTooLarge(BrokerError):
    """The request line and headers are larger than allowed."""

    status = 431
    code = "HEADERS_TOO_LARGE"


class UnsupportedMediaType(BrokerError):
    """The request body must be JSON (Content-Type: application/json)."""

    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class RateLimited(BrokerError):
    """Too many requests; retry after the time given in Retry-After."""

    status = 429
    code = "RATE_LIMITED"


def _all_subclasses(cls: type[BrokerError]) -> list[type[BrokerError]]:
    found: list[type[BrokerError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


_ALL_ERRORS: list[type[BrokerError]] = [BrokerError, *_all_subclasses(BrokerError)]
ERRORS_BY_CODE: dict[str, type[BrokerError]] = {cls.code: cls for cls in _ALL_ERRORS}
ERRORS_BY_CODE["INTERNAL"] = InternalError
