"""Long-poll wake-ups: one pub/sub connection per process, subscribed to the channels of projects that
have waiting consumers. Scripts publish a queue's name on its project's channel when messages become
available; waiters for that queue wake at once. A waiter also wakes at its queue's next known due time
(its caller's timeout), and at least every ``SAFETY_POLL_SECONDS`` in case a notification was missed,
so no message is missed and an idle waiter costs nothing in Redis.

Outages: the reader pings on its connection every ``PING_SECONDS`` and counts the connection as down when
a read fails or no reply came for ``STALE_SECONDS`` (a frozen Redis answers nothing but fails nothing
either). While it is down, waiters do not wake for their safety poll (a claim could not succeed anyway);
they wait until the connection is back (then every waiter wakes, since notifications may have been missed
meanwhile) or until their own timeout. ``wait`` itself never blocks on Redis for more than
``SUBSCRIBE_TIMEOUT_SECONDS``, so a long poll always ends on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

from broker.store.keys import ProjectKeys

log = logging.getLogger("broker.store.notify")
SAFETY_POLL_SECONDS = 2.0
SUBSCRIBE_TIMEOUT_SECONDS = 1.0
PING_SECONDS = 1.0
STALE_SECONDS = 2.5
READ_SECONDS = 0.5
DOWN_RECHECK_SECONDS = 0.25
IDLE_UNSUBSCRIBE_SECONDS = 30.0


class Notifier:
    def __init__(self, redis: Any, *, safety_poll_seconds: float = SAFETY_POLL_SECONDS):
        self.redis = redis
        self.safety_poll_seconds = safety_poll_seconds
        self._waiters: dict[tuple[str, str], set[asyncio.Event]] = defaultdict(set)
        self._wanted: dict[str, int] = defaultdict(int)  # channel -> waiters
        self._idle_since: dict[str, float] = {}  # subscribed channel without waiters -> since (loop time)
        self._subscribed: set[str] = set()
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._kick = asyncio.Event()
        self.connected = True  # until a read fails: a fresh process assumes the store answers
        self._last_reply = 0.0
        self._last_ping = 0.0
        self._closed = False

    # --- waiting ----------------------------------------------------------------------------------
    async def wait(self, project: str, queue: str, timeout: float) -> None:
        """Return when ``queue`` may have messages, or after ``timeout`` seconds (capped by the safety poll
        while the store is reachable)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + max(0.0, timeout)
        channel = ProjectKeys(project).notify
        event = asyncio.Event()
        key = (project, queue)
        self._waiters[key].add(event)
        self._wanted[channel] += 1
        self._idle_since.pop(channel, None)
        try:
            if channel not in self._subscribed and self.connected:
                try:
                    await asyncio.wait_for(self._subscribe(channel), SUBSCRIBE_TIMEOUT_SECONDS)
                except Exception as exc:  # TimeoutError included: the reader takes over
                    self._set_down(exc)
            self._ensure_reader()
            while not event.is_set():
                now = loop.time()
                if now >= deadline:
                    return
                if self.connected:
                    safety_end = started + self.safety_poll_seconds
                    if now >= safety_end:
                        return
                    step = min(deadline, safety_end) - now
                else:
                    step = min(deadline - now, DOWN_RECHECK_SECONDS)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), step)
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[key]
            self._wanted[channel] -= 1
            if self._wanted[channel] <= 0:
                del self._wanted[channel]
                self._idle_since[channel] = loop.time()

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    # --- the connection ---------------------------------------------------------------------------
    def _set_down(self, exc: BaseException) -> None:
        if self.connected:
            log.warning("notifications unavailable (%s); waiting consumers fall back to polling on recovery",
                        str(exc) or type(exc).__name__)
        self.connected = False

    def _set_up(self) -> None:
        if not self.connected:
            log.info("notifications available again")
            self.connected = True
            self._wake_all()  # anything published meanwhile was not heard

    async def _subscribe(self, *channels: str) -> None:
        async with self._lock:
            if self._pubsub is None:
                self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            missing = [c for c in channels if c not in self._subscribed]
            if missing:
                await self._pubsub.subscribe(*missing)
                self._subscribed.update(missing)
        self._kick.set()

    async def _reset(self) -> None:
        """Drop the pub/sub connection; the reader subscribes afresh to what is wanted."""
        async with self._lock:
            pubsub, self._pubsub = self._pubsub, None
            self._subscribed.clear()
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pubsub.aclose(), 1.0)

    def _ensure_reader(self) -> None:
        if not self._closed and (self._reader is None or self._reader.done()):
            self._reader = asyncio.create_task(self._read(), name="notifier")

    async def _sync_subscriptions(self, now: float) -> None:
        wanted = [c for c in self._wanted if c not in self._subscribed]
        if wanted:
            await self._subscribe(*wanted)
        idle = [c for c, since in self._idle_since.items() if now - since >= IDLE_UNSUBSCRIBE_SECONDS]
        if idle:
            async with self._lock:
                for channel in idle:
                    self._idle_since.pop(channel, None)
                    if channel in self._subscribed and channel not in self._wanted:
                        self._subscribed.discard(channel)
                        if self._pubsub is not None:
                            await self._pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = 0.05
        while True:
            try:
                now = loop.time()
                await asyncio.wait_for(self._sync_subscriptions(now), SUBSCRIBE_TIMEOUT_SECONDS)
                if self._pubsub is None or not self._subscribed:
                    if not self._wanted:
                        self._kick.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._kick.wait(), PING_SECONDS)
                    continue
                if now - self._last_ping >= PING_SECONDS:
                    if self._last_reply < self._last_ping and now - self._last_ping >= STALE_SECONDS:
                        raise TimeoutError("no reply from the store")
                    if self._last_reply >= self._last_ping:
                        self._last_ping = now
                        await self._pubsub.ping()
                message = await self._pubsub.get_message(timeout=READ_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # store unreachable or frozen: start over on a new connection
                self._set_down(exc)
                await self._reset()
                self._last_ping = self._last_reply = 0.0
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            if message is None:
                continue
            self._last_reply = loop.time()
            backoff = 0.05
            self._set_up()
            if message.get("type") != "message":
                continue  # pong
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            queue = message["data"]
            queue = queue.decode() if isinstance(queue, bytes) else queue
            project = channel.split("{", 1)[-1].split("}", 1)[0]
            for event in self._waiters.get((project, queue), ()):
                event.set()

    async def close(self) -> None:
        self._closed = True
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        await self._reset()
