"""The errors a client call raises: one class per error code of the contract (docs/api.md, "Errors"), under
one root, :class:`BrokerError`, that carries what the server said: ``code``, ``status``, ``message``,
``request_id`` (give it to the operator: it finds the request in the server's logs), ``field`` (validation
errors) and ``retry_after`` (seconds, on 429 and 503).

The classes mirror the server's own table (``broker.errors``) by code and status without importing it, so
that the client carries nothing of the server; tests/client holds the two tables together. A code this
client does not know yet becomes the class of its status (a 404 with a new code is still a
:class:`NotFound`), or the root class.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import msgspec


class BrokerError(Exception):
    """The server refused the call, or could not be reached."""

    #: The class's code and status; an instance carries the ones actually answered.
    default_code: ClassVar[str] = "INTERNAL"
    default_status: ClassVar[int] = 500

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        field: str | None = None,
        retry_after: float | None = None,
    ):
        self.code = code or self.default_code
        self.status = self.default_status if status is None else status
        self.message = message or (self.__doc__ or self.code).strip().splitlines()[0]
        self.request_id = request_id
        self.field = field
        self.retry_after = retry_after
        super().__init__(self.message)

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        request = f" [request {self.request_id}]" if self.request_id else ""
        return f"{self.code}: {self.message}{where}{request}"


class InternalError(BrokerError):
    """The server failed (a bug on its side); the request id finds it in its logs."""


class Unavailable(BrokerError):
    """The server or its store is unavailable; retry later."""

    default_status = 503
    default_code = "UNAVAILABLE"


class ValidationError(BrokerError):
    """The request is invalid."""

    default_status = 400
    default_code = "VALIDATION_ERROR"


class Unauthorized(BrokerError):
    """Missing, malformed or revoked API key."""

    default_status = 401
    default_code = "UNAUTHORIZED"


class InsufficientCredit(BrokerError):
    """The project's quota is exhausted."""

    default_status = 402
    default_code = "INSUFFICIENT_CREDIT"


class QuotaExceeded(InsufficientCredit):
    """A limit of the project (max_queues, max_messages, max_payload_bytes) would be exceeded."""

    default_code = "QUOTA_EXCEEDED"


class NotFound(BrokerError):
    """Not found."""

    default_status = 404
    default_code = "NOT_FOUND"


class QueueNotFound(NotFound):
    """Queue not found."""

    default_code = "QUEUE_NOT_FOUND"


class MessageNotFound(NotFound):
    """Message not found."""

    default_code = "MESSAGE_NOT_FOUND"


class SubscriptionNotFound(NotFound):
    """The queue has no push subscription."""

    default_code = "SUBSCRIPTION_NOT_FOUND"


class MethodNotAllowed(BrokerError):
    """Method not allowed on this route."""

    default_status = 405
    default_code = "METHOD_NOT_ALLOWED"


class Conflict(BrokerError):
    """Conflict."""

    default_status = 409
    default_code = "CONFLICT"


class QueueAlreadyExists(Conflict):
    """A queue with this name already exists with a different configuration."""

    default_code = "QUEUE_ALREADY_EXISTS"


class QueueInUse(Conflict):
    """The queue is used as a dead-letter queue by another queue or a push subscription."""

    default_code = "QUEUE_IN_USE"


class LeaseExpired(Conflict):
    """The message is not leased under this receipt (the lease ended or was replaced)."""

    default_code = "LEASE_EXPIRED"


class IdempotencyKeyReused(Conflict):
    """This idempotency key was already used with a different request."""

    default_code = "IDEMPOTENCY_KEY_REUSED"


class PayloadTooLarge(BrokerError):
    """The request or payload is larger than allowed."""

    default_status = 413
    default_code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(BrokerError):
    """The request body must be JSON."""

    default_status = 415
    default_code = "UNSUPPORTED_MEDIA_TYPE"


class HeadersTooLarge(BrokerError):
    """The request line and headers are larger than allowed."""

    default_status = 431
    default_code = "HEADERS_TOO_LARGE"


class RateLimited(BrokerError):
    """Too many requests; retry after the time given in Retry-After."""

    default_status = 429
    default_code = "RATE_LIMITED"


class ConnectionFailed(BrokerError):
    """The server could not be reached, or the connection broke before its answer arrived."""

    default_status = 0
    default_code = "CONNECTION_FAILED"

    def __init__(self, message: str, *, sent: bool):
        super().__init__(message)
        #: Whether the request may have reached the server (the connection broke after it was sent).
        self.sent = sent


def _all(cls: type[BrokerError]) -> list[type[BrokerError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all(sub))
    return found


#: Every error class of the contract by its code (tests/client holds it to the server's table).
ERRORS_BY_CODE: dict[str, type[BrokerError]] = {
    cls.default_code: cls for cls in _all(BrokerError) if cls not in (BrokerError, ConnectionFailed)
}
#: The class of an unknown code, by status: the most general class of that status.
_BY_STATUS: dict[int, type[BrokerError]] = {}
for _cls in reversed(list(ERRORS_BY_CODE.values())):
    _BY_STATUS[_cls.default_status] = _cls
_BY_STATUS[500] = InternalError


class _ErrorBody(msgspec.Struct):
    code: str = ""
    message: str = ""
    request_id: str | None = None
    field: str | None = None


class _ErrorResponse(msgspec.Struct):
    error: _ErrorBody


_decode_error = msgspec.json.Decoder(_ErrorResponse).decode


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header (delay-seconds or an HTTP date) as seconds from now; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from_response(status: int, content: bytes, headers: Any) -> BrokerError:
    """The error of an answer that is not 2xx: from the contract's JSON body, or (a proxy's page, an empty
    body) from the status alone."""
    retry_after = retry_after_seconds(headers.get("retry-after"))
    request_id = headers.get("x-request-id")
    try:
        body = _decode_error(content).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        cls = _BY_STATUS.get(status, Unavailable if status in (502, 504) else BrokerError)
        text = content[:200].decode("utf-8", "replace").strip()
        return cls(f"HTTP {status}" + (f": {text}" if text else ""), code=cls.default_code if cls is not BrokerError
                   else f"HTTP_{status}", status=status, request_id=request_id, retry_after=retry_after)
    cls = ERRORS_BY_CODE.get(body.code) or _BY_STATUS.get(status, BrokerError)
    return cls(body.message or None, code=body.code or None, status=status, request_id=body.request_id or request_id,
               field=body.field, retry_after=retry_after)
