"""The one mapping from a failure of the store (a Redis error) to the contract error a client sees.

Every path uses it: script calls (broker/store/scripts.py), the other store reads, both HTTP paths (the
lean path and Starlette's exception handler) and the background jobs. Each Redis failure class maps to one
contract error in :data:`FAILURES`, checked in order (subclasses before their bases); a script's error
reply ``CODE\\tfield\\tmessage`` maps to the contract error named by ``CODE`` (:func:`error_from_reply`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis import exceptions as redis_errors

from broker import errors

T = TypeVar("T")

OUT_OF_MEMORY_MESSAGE = "the message store is out of memory; consume messages or add memory"
LOST_MESSAGE = (
    "the message store lost its data (it came back empty or was replaced); an operator must acknowledge "
    "with `broker store accept-reset` or restart the service"
)


class StoreLostError(redis_errors.ConnectionError):
    """Raised by the connect hook: this connection reaches a store that is not the one the process knew."""


class ReplicaAckError(redis_errors.RedisError):
    """A change was made on the primary but fewer replicas than ``BROKER_REPLICA_ACKS`` confirmed it in time."""

    def __init__(self, acked: int, wanted: int, timeout_ms: int):
        super().__init__(f"{acked} of {wanted} replicas confirmed within {timeout_ms} ms")
        self.acked, self.wanted, self.timeout_ms = acked, wanted, timeout_ms


REPLICA_ACK_MESSAGE = (
    "the change was not confirmed by enough replicas in time (BROKER_REPLICA_ACKS) and may not survive a "
    "failover; retry it (with the same Idempotency-Key for publishes)"
)


#: A store command other than a script call that has not answered after this many seconds is answered 503 (the
#: client's socket timeout bounds each reply; this bounds the whole, connects and a failover's discovery included).
ANSWER_TIMEOUT_SECONDS = 10.0


def _unavailable(message: str | None = None, retry_after: str = "1") -> Callable[[], errors.BrokerError]:
    return lambda: errors.Unavailable(message, headers={"Retry-After": retry_after})


#: Redis failure class -> the contract error it becomes (first match wins: subclasses come first).
FAILURES: tuple[tuple[type[Exception], Callable[[], errors.BrokerError]], ...] = (
    (StoreLostError, _unavailable(LOST_MESSAGE, "5")),
    (ReplicaAckError, _unavailable(REPLICA_ACK_MESSAGE)),
    (redis_errors.OutOfMemoryError, _unavailable(OUT_OF_MEMORY_MESSAGE, "5")),
    (redis_errors.BusyLoadingError, _unavailable("the message store is loading its data; retry shortly")),
    (redis_errors.ReadOnlyError, _unavailable("the message store is read-only (a replica or a failover)")),
    (redis_errors.MasterDownError, _unavailable("the message store has no primary")),
    (redis_errors.ClusterDownError, _unavailable("the message store's cluster is down")),
    (redis_errors.TryAgainError, _unavailable()),
    # A script missing again right after it was loaded: the store changed under the call (a failover).
    (redis_errors.NoScriptError, _unavailable("the message store changed (a failover); retry")),
    (redis_errors.ConnectionError, _unavailable()),
    (redis_errors.TimeoutError, _unavailable()),
    (TimeoutError, _unavailable()),
    (OSError, _unavailable()),  # the socket itself (reset, refused, unreachable)
)

#: Replies of a generic ``ResponseError`` class that still mean "the store cannot serve now".
_UNAVAILABLE_REPLIES = ("MISCONF", "LOADING", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "OOM")


def error_from_reply(exc: redis_errors.ResponseError) -> errors.BrokerError | None:
    """The contract error of a script's ``CODE\\tfield\\tmessage`` error reply, or None for another reply."""
    text = str(exc)
    code, sep, rest = text.partition("\t")
    cls = errors.ERRORS_BY_CODE.get(code)
    if not sep or cls is None:
        # Redis wraps errors raised inside scripts: "... user_script:12: CODE\tfield\tmsg ...".
        for candidate, klass in errors.ERRORS_BY_CODE.items():
            marker = candidate + "\t"
            if marker in text:
                code, rest = candidate, text.split(marker, 1)[1]
                cls = klass
                break
        else:
            return None
    field, _, message = rest.partition("\t")
    message = message.split(" script:", 1)[0].strip()
    return cls(message or None, field=field or None)


def store_failure(exc: BaseException) -> errors.BrokerError:
    """The contract error for ``exc``: a contract error as it is, a Redis failure by :data:`FAILURES`, a
    script's error reply by its code; anything else (a bug) is 500 ``INTERNAL`` with no details."""
    if isinstance(exc, errors.BrokerError):
        return exc
    for cls, make in FAILURES:
        if isinstance(exc, cls):
            return make()
    if isinstance(exc, redis_errors.ResponseError):
        mapped = error_from_reply(exc)
        if mapped is not None:
            return mapped
        if str(exc).startswith(_UNAVAILABLE_REPLIES):
            return _unavailable()()
    if isinstance(exc, redis_errors.ResponseError | redis_errors.DataError):
        # A reply or an argument the service does not expect (a renamed command, NOPERM, a script bug): the
        # store works, the request cannot. 500 without details; the caller logs it.
        return errors.InternalError()
    if isinstance(exc, redis_errors.RedisError):  # the connection misbehaves (a garbled reply, a lost pool)
        return _unavailable()()
    return errors.InternalError()


async def answered(awaitable: Awaitable[T]) -> T:
    """Await a store command other than a script call; a Redis failure raises its contract error."""
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT_SECONDS):
            return await awaitable
    except (redis_errors.RedisError, OSError) as exc:  # TimeoutError included (an OSError)
        raise store_failure(exc) from exc
