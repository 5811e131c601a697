"""When a call is sent again, and after how long (on tenacity, for the sync and the async client alike).

A call is retried when the server refused it without acting on it (429 ``RATE_LIMITED``, 503
``UNAVAILABLE``: "a request that fails changes nothing") and when the connection could not be made. When the
connection broke after the request was sent, or a proxy answered 502/504, the server may have acted on it:
then only a :attr:`~broker.client.calls.Call.repeatable` call is sent again (reads, and calls under an
idempotency key, which ``publish`` and ``publish_batch`` always have). The wait is the server's
``Retry-After`` when it gave one (up to ``max_retry_after``; a longer one is raised at once), else exponential
backoff with full jitter: a random time between 0 and ``min(max_backoff, backoff * 2 ** n)``.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

import tenacity

from broker.client.calls import Call
from broker.client.errors import BrokerError, ConnectionFailed

log = logging.getLogger("broker.client")

#: Refused before anything was done: always safe to send again.
REFUSED = frozenset({429, 503})
#: A proxy's answer: the server behind it may have acted.
AMBIGUOUS = frozenset({502, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call is retried; ``retries=0`` sends every call once."""

    retries: int = 5
    backoff: float = 0.1
    max_backoff: float = 5.0
    max_retry_after: float = 60.0

    def should_retry(self, exc: BaseException, call: Call[Any]) -> bool:
        if isinstance(exc, ConnectionFailed):
            return not exc.sent or call.repeatable
        if not isinstance(exc, BrokerError):
            return False
        if exc.retry_after is not None and exc.retry_after > self.max_retry_after:
            return False
        if exc.status in REFUSED:
            return True
        return exc.status in AMBIGUOUS and call.repeatable

    def wait(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1 for the first)."""
        after = exc.retry_after if isinstance(exc, BrokerError) else None
        if after is not None:
            return min(after, self.max_retry_after) + random.uniform(0, self.backoff)
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))

    def _options(self, call: Call[Any]) -> dict[str, object]:
        def wait(state: tenacity.RetryCallState) -> float:
            return self.wait(state.attempt_number, state.outcome.exception() if state.outcome else None)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            log.info("%s: %s; retry %d of %d in %.2f s", call.capability, exc, state.attempt_number, self.retries,
                     delay)

        return {
            "stop": tenacity.stop_after_attempt(self.retries + 1),
            "wait": wait,
            "retry": tenacity.retry_if_exception(lambda exc: self.should_retry(exc, call)),
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def retrying(self, call: Call[Any]) -> tenacity.Retrying:
        return tenacity.Retrying(**self._options(call))  # type: ignore[arg-type]

    def async_retrying(self, call: Call[Any]) -> tenacity.AsyncRetrying:
        return tenacity.AsyncRetrying(**self._options(call))  # type: ignore[arg-type]
