"""A clock the tests drive: the store and the scripts take the time as an argument, so a test steps past a lease
or a delay instead of sleeping."""

from __future__ import annotations

import time


class Clock:
    """Milliseconds since the epoch, moved only by the test: ``clock.advance(seconds)`` or ``clock.ms = ...``.
    Starts at the real time, or at ``start_ms``."""

    def __init__(self, start_ms: int | None = None) -> None:
        self.ms = int(time.time() * 1000) if start_ms is None else start_ms

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += round(seconds * 1000)
