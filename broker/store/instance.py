"""The store's identity: detecting a Redis that came back without its data, and answering while it is away.

A Redis restarted without its append-only file (deleted, on a fresh volume, a failover to an empty replica,
a FLUSHALL) answers like a healthy, empty store. Serving on it would silently drop every message the
service had acknowledged. So the first process that starts on a store writes an *instance marker*
(``v1:meta:instance``, SET NX, a random id); every API process remembers the marker it found and checks
it:

- every ``check_interval`` seconds (1 s) in a background task, and on every ``GET /readyz``;
- on every new Redis connection of the process's own client (a connect hook), so that after a restart no
  request runs on a store that has not been verified first.

After a failed check (the store refused, timed out after ``check_timeout`` or was loading) the check runs
every ``RECHECK_SECONDS`` (0.25 s); after ``GATE_AFTER_FAILURES`` failed checks in a row, requests are
answered ``503 UNAVAILABLE`` at once instead of each waiting for its own socket timeout, until a check
succeeds again. (One slow answer does not close the gate.)

When the marker vanished (or was replaced by one this process does not know), the process logs an ERROR
(repeated every minute), ``/readyz`` answers 503, and every authenticated route answers
``503 UNAVAILABLE`` "the message store lost its data" until an operator acknowledges the loss:

- ``broker store accept-reset`` writes a new marker flagged as accepted; every running process adopts it
  within ``check_interval`` and serves again (on what the store now holds);
- or the processes are restarted: a process cannot know what the store held before it started, so a
  starting process adopts whatever marker it finds, or creates one.

If the store comes back with the marker this process knows (its data was restored), the process serves
again by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from broker import errors
from broker.store.failures import LOST_MESSAGE, StoreLostError
from broker.store.keys import INSTANCE

log = logging.getLogger("broker.store.instance")

CHECK_INTERVAL_SECONDS = 1.0
RECHECK_SECONDS = 0.25  # the check interval while the store does not answer
CHECK_TIMEOUT_SECONDS = 1.0
GATE_AFTER_FAILURES = 2
#: After a connection attempt timed out, further attempts fail at once for this long. redis-py opens new
#: connections one at a time (under the pool's lock), so without this, requests queued behind a frozen
#: store would each wait for their predecessors' timeouts.
CONNECT_BACKOFF_SECONDS = 1.0
LOST_LOG_EVERY_SECONDS = 60.0
ORIGIN_START = "start"
ORIGIN_ACCEPTED = "accept-reset"


class Marker(msgspec.Struct, frozen=True):
    """The value of ``v1:meta:instance`` (JSON)."""

    id: str
    created_ms: int
    origin: str = ORIGIN_START


def new_marker(origin: str = ORIGIN_START) -> Marker:
    return Marker(id=secrets.token_hex(12), created_ms=int(time.time() * 1000), origin=origin)


def encode_marker(marker: Marker) -> bytes:
    return msgspec.json.encode(marker)


def decode_marker(raw: Any) -> Marker | None:
    """The marker in ``raw`` (None when absent). A value that is not a marker's JSON counts as an id."""
    if raw is None:
        return None
    data = raw if isinstance(raw, bytes) else str(raw).encode()
    try:
        return msgspec.json.decode(data, type=Marker)
    except msgspec.DecodeError:
        return Marker(id=data.decode(errors="replace"), created_ms=0)


async def read_marker(redis: Any) -> Marker | None:
    return decode_marker(await redis.get(INSTANCE))


async def ensure_marker(redis: Any) -> Marker | None:
    """The store's marker, created (SET NX) when the store has none: the first start on a store. None when
    the store has none and refuses the write (out of memory)."""
    marker = await read_marker(redis)
    if marker is not None:
        return marker
    with contextlib.suppress(redis_errors.OutOfMemoryError):
        await redis.set(INSTANCE, encode_marker(new_marker()), nx=True)
    return await read_marker(redis)


async def accept_reset(redis: Any) -> tuple[Marker | None, Marker]:
    """Acknowledge that the store lost its data: replace the marker with a new, accepted one.

    Returns (the marker found, the new marker). Running processes adopt the new marker and serve again.
    """
    previous = await read_marker(redis)
    marker = new_marker(ORIGIN_ACCEPTED)
    await redis.set(INSTANCE, encode_marker(marker))
    return previous, marker


@dataclass(frozen=True)
class Status:
    """The outcome of one check."""

    reachable: bool
    lost: bool
    detail: str = ""


class InstanceGuard:
    """Remembers the store's marker for one process and checks it; see the module docstring.

    ``redis`` is the process's client. With ``hook=True`` (the process owns a plain Redis client) the guard
    verifies every new connection of that client and checks with a separate small client of its own.
    """

    def __init__(
        self,
        redis: Any,
        *,
        hook: bool = False,
        check_interval: float = CHECK_INTERVAL_SECONDS,
        check_timeout: float = CHECK_TIMEOUT_SECONDS,
    ):
        self.redis = redis
        self.check_interval = check_interval
        self.check_timeout = check_timeout
        self.marker: Marker | None = None
        self.lost_since: float | None = None
        self.lost_detail = ""
        self.reachable = True
        self.failures = 0  # failed checks in a row
        self._last_lost_log = 0.0
        self._task: asyncio.Task[None] | None = None
        self._inflight: asyncio.Task[Status] | None = None
        self._connect_failed_at: float | None = None
        self._check_client: Any = redis
        self._own_check_client = False
        if hook:
            self._install_hook()

    # --- state ------------------------------------------------------------------------------------
    @property
    def lost(self) -> bool:
        return self.lost_since is not None

    def admit(self) -> None:
        """Raise 503 while the store is known to have lost its data, or did not answer the last check (no
        Redis round trip)."""
        if self.lost_since is not None:
            raise errors.Unavailable(LOST_MESSAGE, headers={"Retry-After": "5"})
        if self.failures >= GATE_AFTER_FAILURES:
            raise errors.Unavailable("the message store does not answer", headers={"Retry-After": "1"})

    def _mark_lost(self, detail: str) -> None:
        now = time.monotonic()
        if self.lost_since is None:
            self.lost_since = now
            self.lost_detail = detail
            self._last_lost_log = now
            log.error("STORE LOST ITS DATA: %s. Refusing requests (503) until an operator runs "
                      "`broker store accept-reset` or restarts the service.", detail)
        elif now - self._last_lost_log >= LOST_LOG_EVERY_SECONDS:
            self._last_lost_log = now
            log.error("the message store is still marked as having lost its data (%s); run "
                      "`broker store accept-reset` to serve again", self.lost_detail)

    def _mark_intact(self, marker: Marker, why: str) -> None:
        if self.lost_since is not None:
            log.warning("serving again: %s", why)
        self.marker = marker
        self.lost_since = None
        self.lost_detail = ""

    def evaluate(self, found: Marker | None) -> bool:
        """Update the state from the marker found in the store; whether the store is the one we know."""
        known = self.marker
        if known is None:
            return True  # not established yet (the store was unreachable so far): the next check adopts one
        if found is None:
            self._mark_lost(f"the instance marker {INSTANCE} (store {known.id}) is gone")
            return False
        if found.id == known.id:
            self._mark_intact(found, f"the store {known.id} is back with its data")
            return True
        if found.origin == ORIGIN_ACCEPTED and found.created_ms >= known.created_ms:
            self._mark_intact(found, f"an operator accepted the reset of the store (new identity {found.id})")
            return True
        self._mark_lost(f"the store's identity changed from {known.id} to {found.id} (replaced or emptied)")
        return False

    # --- checks -----------------------------------------------------------------------------------
    async def check(self) -> Status:
        """One bounded check (establishing the marker if this process has none yet). Concurrent callers
        (``/readyz`` probes, the periodic task) share the check in flight."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._check())
        return await asyncio.shield(self._inflight)

    async def _check(self) -> Status:
        try:
            async with asyncio.timeout(self.check_timeout):
                if self.marker is None:
                    self.marker = await ensure_marker(self._check_client)
                    if self.marker is not None:
                        log.info("store identity %s (%s)", self.marker.id, self.marker.origin)
                    found: Marker | None = self.marker
                else:
                    found = await read_marker(self._check_client)
        except (redis_errors.RedisError, OSError, TimeoutError) as exc:
            self.reachable = False
            self.failures += 1
            return Status(reachable=False, lost=self.lost, detail=str(exc) or type(exc).__name__)
        self.reachable = True
        self.failures = 0
        self._connect_failed_at = None
        self.evaluate(found)
        return Status(reachable=True, lost=self.lost, detail=self.lost_detail)

    async def ready(self) -> None:
        """For ``/readyz``: raise 503 with the reason unless the store answers and is the one we know."""
        status = await self.check()
        if status.lost:
            raise errors.Unavailable(LOST_MESSAGE + f" ({status.detail})", headers={"Retry-After": "5"})
        if not status.reachable:
            raise errors.Unavailable("the message store does not answer", headers={"Retry-After": "1"})

    async def start(self) -> None:
        """Establish the marker (if the store answers now) and start the periodic check."""
        await self.check()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="instance-guard")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval if self.reachable else min(self.check_interval, RECHECK_SECONDS))
            try:
                await self.check()
            except Exception:  # never let the checker die
                log.exception("instance check failed")

    async def stop(self) -> None:
        # The periodic task first: while the check in flight is awaited, it could start the next one.
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._inflight is not None and not self._inflight.done():
            self._inflight.cancel()
            with contextlib.suppress(BaseException):
                await self._inflight
        if self._own_check_client:
            with contextlib.suppress(Exception):
                await self._check_client.aclose()

    # --- the connect hook -------------------------------------------------------------------------
    def _install_hook(self) -> None:
        pool = getattr(self.redis, "connection_pool", None)
        if pool is None or not hasattr(pool, "connection_kwargs"):
            return  # a cluster client: checked by the periodic task only
        kwargs = {k: v for k, v in pool.connection_kwargs.items() if k != "redis_connect_func"}
        check_pool = aioredis.ConnectionPool(connection_class=pool.connection_class, max_connections=4, **kwargs)
        self._check_client = aioredis.Redis.from_pool(check_pool)
        self._own_check_client = True
        pool.connection_kwargs["redis_connect_func"] = self.on_connect

    async def on_connect(self, connection: Any) -> None:
        """Runs on every new connection of the process's client, before its first command: the usual
        handshake, then the marker is read on it, within ``check_timeout`` in all (a frozen Redis accepts
        connections but never answers). A store that is not ours refuses the connection."""
        failed_at = self._connect_failed_at
        if failed_at is not None and time.monotonic() - failed_at < CONNECT_BACKOFF_SECONDS:
            raise redis_errors.ConnectionError("the message store did not answer a connection a moment ago")
        try:
            async with asyncio.timeout(self.check_timeout):
                await connection.on_connect()
                if self.marker is None:
                    return
                await connection.send_command("GET", INSTANCE)
                raw = await connection.read_response()
        except (TimeoutError, redis_errors.TimeoutError):
            self._connect_failed_at = time.monotonic()
            raise redis_errors.TimeoutError("timeout connecting to the message store") from None
        self._connect_failed_at = None
        if not self.evaluate(decode_marker(raw)):
            raise StoreLostError(LOST_MESSAGE)
