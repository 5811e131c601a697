"""Long-poll wake-ups: one pub/sub connection per process, subscribed to the channels of projects that
have waiting consumers. Scripts publish a queue's name on its project's channel when messages become
available; waiters for that queue wake at once. A waiter also wakes at its queue's next known due
time, and at least every ``SAFETY_POLL_SECONDS`` (in case a notification was missed while the store
was unreachable), so no message is missed and an idle waiter costs nothing in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

from broker.keys import ProjectKeys

log = logging.getLogger("broker.notify")
SAFETY_POLL_SECONDS = 2.0


class Notifier:
    def __init__(self, redis: Any):
        self.redis = redis
        self._waiters: dict[tuple[str, str], set[asyncio.Event]] = defaultdict(set)
        self._channels: dict[str, int] = defaultdict(int)  # channel -> waiters
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()

    async def _ensure_subscribed(self, channel: str) -> None:
        async with self._lock:
            if self._pubsub is None:
                self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            if channel not in self._pubsub.channels:
                await self._pubsub.subscribe(channel)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            try:
                if not self._pubsub.subscribed:
                    await asyncio.sleep(0.05)
                    continue
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # store unreachable: waiters fall back to their safety poll
                log.debug("notification reader: %s", exc)
                await asyncio.sleep(0.5)
                continue
            if not message or message.get("type") != "message":
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            queue = message["data"]
            queue = queue.decode() if isinstance(queue, bytes) else queue
            project = channel.split("{", 1)[-1].split("}", 1)[0]
            for event in self._waiters.get((project, queue), ()):
                event.set()

    async def wait(self, project: str, queue: str, timeout: float) -> None:
        """Return when ``queue`` may have messages, or after ``timeout`` seconds (capped by the safety poll)."""
        channel = ProjectKeys(project).notify
        event = asyncio.Event()
        key = (project, queue)
        self._waiters[key].add(event)
        self._channels[channel] += 1
        try:
            try:
                await self._ensure_subscribed(channel)
            except Exception as exc:
                log.debug("subscribe failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(timeout, SAFETY_POLL_SECONDS))
        finally:
            self._waiters[key].discard(event)
            if not self._waiters[key]:
                del self._waiters[key]
            self._channels[channel] -= 1
            if self._channels[channel] <= 0:
                del self._channels[channel]
