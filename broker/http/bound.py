"""The bound on a request's answer: a body route's handler (every message POST) that has not finished
``ANSWER_BOUND_SECONDS`` after its body was read (plus a long poll's ``wait_seconds``) is cancelled and the
request answered ``503 UNAVAILABLE`` with ``Retry-After: 1``.

Each store call has bounds of its own (the pipelined connection's reply timeout and connect bound, the
generic client's socket timeouts, the key lookup's and :func:`broker.store.failures.answered`'s bounds), and
they are what answers in practice. This one is the backstop that makes "every request is answered, success
or 503" hold whatever a request waits for, across a failover included: a change cut off by it may or may not
have been made, like any 503 of the store, and a client retries it with its ``idempotency_key``. When it
fires, the place the request was waiting at is logged (a warning, at most one every 10 s), since one of the
inner bounds then did not hold.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import TypeVar

from broker import errors

log = logging.getLogger("broker.http.bound")
T = TypeVar("T")

#: Seconds a handler may take (a long poll: plus its wait). Above the inner bounds: a store call's reply 3 s,
#: a pipelined connect 8 s, a replicated change about twice BROKER_REPLICA_ACK_TIMEOUT_MS, a lookup 5 s.
ANSWER_BOUND_SECONDS = 15.0
LOG_EVERY_SECONDS = 10.0
MESSAGE = "the message store did not answer in time"

_current: contextvars.ContextVar[asyncio.Timeout | None] = contextvars.ContextVar("answer_bound", default=None)
_last_logged = -LOG_EVERY_SECONDS


async def within_bound(
    call: Awaitable[T], seconds: float = ANSWER_BOUND_SECONDS, describe: Callable[[], str] | None = None
) -> T:
    """Await ``call`` (a handler's coroutine) within ``seconds``; beyond it, raise ``Unavailable``. The warning
    then logged includes ``describe()`` (the state of the store's connection), when given."""
    scope = asyncio.timeout(seconds)
    token = _current.set(scope)
    try:
        async with scope:
            return await call
    except TimeoutError as exc:
        if not scope.expired():
            raise
        _log_waiting_point(exc, describe)
        raise errors.Unavailable(MESSAGE, headers={"Retry-After": "1"}) from None
    finally:
        _current.reset(token)


def extend_bound(seconds: float) -> None:
    """Give the current request ``seconds`` more (a long poll's wait); a no-op outside ``within_bound``."""
    scope = _current.get()
    when = scope.when() if scope is not None else None
    if scope is not None and when is not None and seconds > 0:
        scope.reschedule(when + seconds)


def _log_waiting_point(exc: TimeoutError, describe: Callable[[], str] | None) -> None:
    global _last_logged
    now = time.monotonic()
    if now - _last_logged < LOG_EVERY_SECONDS:
        return
    _last_logged = now
    cancelled = exc.__context__ or exc
    frames = traceback.extract_tb(cancelled.__traceback__)[-6:]
    where = " <- ".join(f"{f.name} ({f.filename.rsplit('/', 2)[-1]}:{f.lineno})" for f in reversed(frames))
    state = ""
    if describe is not None:
        try:
            state = "; " + describe()
        except Exception as failure:  # a diagnostic must not turn the 503 into a 500
            state = f"; (no state: {failure!r})"
    log.warning("a request was not answered within its bound (answered 503); it was waiting at: %s%s", where, state)
