"""SQS's errors: each has the name the JSON protocol puts in ``__type``, the code the query protocol (and the
JSON protocol's ``x-amzn-query-error`` header) carries, an HTTP status and whose fault it is. The native
errors of the store map onto them in one table (``from_broker``)."""

from __future__ import annotations

from broker import errors


class SqsError(Exception):
    """An error answered in SQS's shape."""

    def __init__(self, name: str, message: str, *, code: str | None = None, status: int = 400, sender: bool = True,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.name = name
        self.code = code or name
        self.message = message
        self.status = status
        self.sender = sender
        self.headers = headers or {}


def invalid_parameter(message: str) -> SqsError:
    return SqsError("InvalidParameterValue", message)


def missing_parameter(name: str) -> SqsError:
    return SqsError("MissingParameter", f"The request must contain the parameter {name}.")


def invalid_attribute_name(name: str) -> SqsError:
    return SqsError("InvalidAttributeName", f"Unknown Attribute {name}.")


def invalid_attribute_value(name: str, why: str) -> SqsError:
    return SqsError("InvalidAttributeValue", f"Invalid value for the parameter {name}. {why}".strip())


def queue_does_not_exist() -> SqsError:
    return SqsError("QueueDoesNotExist", "The specified queue does not exist.",
                    code="AWS.SimpleQueueService.NonExistentQueue")


def receipt_handle_invalid(handle: str) -> SqsError:
    shown = handle if len(handle) <= 40 else handle[:40] + "..."
    return SqsError("ReceiptHandleIsInvalid", f'The input receipt handle "{shown}" is not a valid receipt handle.')


def message_not_inflight() -> SqsError:
    return SqsError("MessageNotInflight", "The message referred to isn't in flight.",
                    code="AWS.SimpleQueueService.MessageNotInflight")


def batch_error(name: str, message: str) -> SqsError:
    return SqsError(name, message, code=f"AWS.SimpleQueueService.{name}")


def unsupported_operation(action: str) -> SqsError:
    return SqsError("UnsupportedOperation", f"The action {action} is not supported by this service.",
                    code="AWS.SimpleQueueService.UnsupportedOperation")


def invalid_action(action: str) -> SqsError:
    return SqsError("InvalidAction", f"The action or operation requested is invalid: {action[:64]!r}.")


def access_denied(message: str) -> SqsError:
    return SqsError("AccessDenied", message, status=403)


def signature_mismatch(message: str) -> SqsError:
    return SqsError("SignatureDoesNotMatch", message, status=403)


def unknown_key() -> SqsError:
    return SqsError("InvalidClientTokenId", "The security token included in the request is invalid.", status=403)


def incomplete_signature(message: str) -> SqsError:
    return SqsError("IncompleteSignature", message)


def missing_authentication() -> SqsError:
    return SqsError("MissingAuthenticationToken", "Request is missing Authentication Token", status=403)


def from_broker(exc: errors.BrokerError) -> SqsError:
    """The SQS error for a native one (the store's errors reach the edge as these)."""
    if isinstance(exc, errors.QueueNotFound):
        return queue_does_not_exist()
    if isinstance(exc, errors.RateLimited):
        return SqsError("RequestThrottled", exc.message, code="RequestThrottled", status=400, headers=exc.headers)
    if isinstance(exc, errors.Unavailable):
        return SqsError("ServiceUnavailable", exc.message, status=503, sender=False, headers=exc.headers)
    if isinstance(exc, errors.QueueAlreadyExists):
        return SqsError("QueueNameExists", "A queue already exists with the same name and a different value for "
                        "attribute(s).", code="QueueAlreadyExists")
    if isinstance(exc, errors.QueueInUse):
        return SqsError("ResourceInUse", exc.message, code="ResourceInUse")
    if isinstance(exc, errors.PayloadTooLarge):
        return invalid_parameter(exc.message)
    if isinstance(exc, errors.ValidationError):
        return invalid_parameter(exc.message)
    if exc.status >= 500:
        return SqsError("InternalFailure", "The request processing has failed because of an unknown error.",
                        status=500, sender=False)
    return SqsError("InvalidParameterValue", exc.message, status=400)
