"""Deliveries in flight per endpoint, shared fairly by the subscriptions that push to it.

An endpoint is a URL's origin (scheme, host, port): the unit of connection reuse (broker/push/pool.py). Each
subscription's claim loop asks its endpoint for slots before it leases messages, so a message is leased only
when it can be sent at once (no lease time is spent waiting), and the deliveries to one endpoint never exceed
its limit however many subscriptions point at it. Slots are granted in the order they were asked for, each
loop asking again only after it was served, so the subscriptions waiting for a busy endpoint take turns; a
grant is at most a fair share of the limit among those waiting (but at least a tenth of the limit, the
quantum), and a waiter is served once a quantum is free (or what it asked for, when less): granting freed
slots one by one would make every claim a claim of one message.
"""

from __future__ import annotations

import asyncio
from collections import deque
from urllib.parse import urlsplit

Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin:
    """(scheme, host, port) of ``url``; the default port of its scheme when it has none."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80)


class EndpointSlots:
    """The delivery slots of one endpoint."""

    def __init__(self, limit: int):
        self.limit = limit
        self.free = limit
        self.quantum = max(1, limit // 10)
        self._waiters: deque[tuple[asyncio.Future[int], int]] = deque()

    @property
    def idle(self) -> bool:
        return self.free == self.limit and not self._waiters

    async def acquire(self, want: int) -> int:
        """Wait for slots; returns how many were granted (1..``want``). A cancelled wait takes none."""
        if self.free > 0 and not self._waiters:
            granted = min(want, self.free)
            self.free -= granted
            return granted
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        entry = (future, want)
        self._waiters.append(entry)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(future.result())
            else:
                try:
                    self._waiters.remove(entry)
                except ValueError:
                    pass
            raise

    def release(self, count: int) -> None:
        """Give back ``count`` slots, and grant what is free to the waiters in turn."""
        if count <= 0:
            return
        self.free = min(self.limit, self.free + count)
        while self._waiters:
            future, want = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            if self.free < min(want, self.quantum):
                break  # wait for a quantum: one claim of ten messages costs about what one of one does
            self._waiters.popleft()
            share = max(self.quantum, self.limit // (len(self._waiters) + 1))
            granted = min(want, self.free, share)
            self.free -= granted
            future.set_result(granted)


class Endpoints:
    """The slots of every endpoint this process pushes to, ``limit`` each."""

    def __init__(self, limit: int):
        self.limit = limit
        self._slots: dict[Origin, EndpointSlots] = {}

    def slots(self, url: str) -> EndpointSlots:
        key = origin_of(url)
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = EndpointSlots(self.limit)
        return slots

    def forget_idle(self, keep: set[Origin]) -> None:
        """Drop the idle slots of endpoints no subscription in ``keep`` uses."""
        for key in [k for k, s in self._slots.items() if k not in keep and s.idle]:
            del self._slots[key]
