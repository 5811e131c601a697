"""Waiting for something to happen: poll an observable condition until it holds, with a deadline, instead of
sleeping for a fixed time and hoping it happened meanwhile. ``wait_until`` for tests that drive processes from
plain functions, ``eventually`` for tests on an event loop."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

#: What a failure message names: a string, or a function giving one when needed (a server's output, say).
What = str | Callable[[], str]
Errors = tuple[type[BaseException], ...]


def _failure(what: What, timeout: float, last: Any) -> AssertionError:
    text = what() if callable(what) else what
    return AssertionError(f"{text}: not within {timeout} s (last: {last!r:.300})")


def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, *, interval: float = 0.05, what: What = "the condition",
    ignoring: Errors = (),
) -> Any:
    """Call ``predicate()`` every ``interval`` seconds until it returns something truthy, and return that; raise
    ``AssertionError`` naming ``what`` if it has not within ``timeout`` seconds. An exception of one of the
    ``ignoring`` types counts as "not yet" (a server that does not listen yet); any other propagates."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except ignoring as exc:
            value = None
            last: Any = exc
        else:
            last = value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _failure(what, timeout, last)
        time.sleep(interval)


async def eventually(
    check: Callable[[], Any], timeout: float = 5.0, *, interval: float = 0.02, what: What = "the condition",
    ignoring: Errors = (),
) -> Any:
    """``wait_until`` on the running event loop: ``check()`` may return a value or an awaitable of one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
        except ignoring as exc:
            value = None
            last: Any = exc
        else:
            last = value
        if value:
            return value
        if loop.time() >= deadline:
            raise _failure(what, timeout, last)
        await asyncio.sleep(interval)

