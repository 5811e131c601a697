"""Admission control: per-project request-rate limits, and the bound on long polls per process.

**Rate limits.** A project may have a limit (``broker limits set --project P --rate R --burst B``): a token
bucket in Redis (``v1:{P}:ratelimit``) that refills at ``R`` tokens per second up to ``B``. Every
authenticated request of the project spends one token; without one it is refused with
``429 RATE_LIMITED`` and ``Retry-After``. Projects have no limit by default.

The hot path stays at one Redis round trip per request: each API process takes tokens from the Redis
bucket in *chunks* (``lua/take_tokens.lua``, about ``CHUNK_SECONDS`` of the rate, at most ``MAX_CHUNK``)
and spends them locally. When a process's chunk runs low it takes the next one in the background; only
when it has none left does a request wait for one take (so one extra round trip per chunk at most).
After the bucket said "empty", the process refuses locally until the bucket's refill time, without asking
Redis. Whether a project has a limit at all is cached for ``UNLIMITED_RECHECK_SECONDS`` and re-read in the
background, so a project without a limit costs nothing after its first request in a process.

Tolerance, with ``P`` API processes and ``chunk`` the chunk size: the bucket itself never grants more than
``burst + rate * t`` tokens in any ``t`` seconds; tokens a process took but has not spent yet shift up
to ``P * chunk`` requests between intervals (admitted a little later than granted, or held by an idle
process while another one refuses). A new or changed limit applies within about a second.

**Long polls.** ``LongPollSlots`` bounds the consumes with ``wait_seconds > 0`` that one process serves at
once (``BROKER_MAX_LONG_POLLS``), and those of one project (``BROKER_MAX_LONG_POLLS_PER_PROJECT``); beyond
either, such a consume is refused with ``429 RATE_LIMITED`` and ``Retry-After: 1`` (a consume with
``wait_seconds`` 0 is never refused by these bounds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker import errors
from broker.store.failures import answered
from broker.store.keys import RATE_LIMITS, ProjectKeys
from broker.store.scripts import Scripts

log = logging.getLogger("broker.store.ratelimit")

CHUNK_SECONDS = 0.1
MAX_CHUNK = 100
UNLIMITED_RECHECK_SECONDS = 1.0
MAX_TRACKED_PROJECTS = 10_000


def wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: int

    @property
    def chunk(self) -> int:
        """How many tokens a process takes at a time."""
        return max(1, min(MAX_CHUNK, self.burst, math.ceil(self.rate * CHUNK_SECONDS)))


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


class _Bucket:
    """One process's view of one project's bucket."""

    __slots__ = ("known_at", "limit", "refill", "retry_at", "tokens")

    def __init__(self) -> None:
        self.limit: Limit | None = None
        self.known_at = -math.inf  # monotonic time of the last answer from Redis
        self.tokens = 0  # taken from Redis, not yet spent
        self.retry_at = 0.0  # the bucket was empty: refuse locally until then
        self.refill: asyncio.Task[None] | None = None


async def take_tokens(scripts: Scripts, project: str, want: int, now_ms: int) -> tuple[int, Limit | None, int]:
    """One call of ``take_tokens.lua``: (tokens granted, the limit or None, ms until a token when none)."""
    granted, rate, burst, wait_ms = await scripts.run(
        scripts.lua.take_tokens, [ProjectKeys(project).ratelimit], [now_ms, want]
    )
    if int(granted) < 0:
        return 0, None, 0
    text = rate.decode() if isinstance(rate, bytes) else str(rate)
    return int(granted), Limit(rate=float(text), burst=int(burst)), int(wait_ms)


class RateLimiter:
    """Per-project token buckets for one process (see the module docstring)."""

    def __init__(
        self,
        scripts: Scripts,
        *,
        clock: Callable[[], int] = wall_ms,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.scripts = scripts
        self.clock = clock
        self.monotonic = monotonic
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._closed = False

    def _bucket(self, project: str) -> _Bucket:
        bucket = self._buckets.get(project)
        if bucket is None:
            bucket = self._buckets[project] = _Bucket()
            while len(self._buckets) > MAX_TRACKED_PROJECTS:
                _, old = self._buckets.popitem(last=False)
                if old.refill is not None:
                    old.refill.cancel()
        else:
            self._buckets.move_to_end(project)
        return bucket

    def admit_now(self, project: str) -> bool:
        """``admit`` when it needs no Redis round trip (the steady state): True when the request is admitted;
        False means "call ``admit``", which decides (and may refuse)."""
        bucket = self._buckets.get(project)
        if bucket is None or bucket.known_at == -math.inf:
            return False
        self._buckets.move_to_end(project)
        if bucket.limit is None:
            if self.monotonic() - bucket.known_at >= UNLIMITED_RECHECK_SECONDS:
                self._refill_soon(project, bucket)
            return True
        if bucket.tokens > 0:
            bucket.tokens -= 1
            if bucket.tokens <= bucket.limit.chunk // 2:
                self._refill_soon(project, bucket)
            return True
        return False

    async def admit(self, project: str) -> None:
        """Spend one of ``project``'s tokens, or raise ``RateLimited``."""
        if self.admit_now(project):
            return
        bucket = self._bucket(project)
        if bucket.known_at != -math.inf:  # out of tokens: refused until retry_at, then a new chunk
            now = self.monotonic()
            if now < bucket.retry_at:
                raise self._refusal(bucket, now)
        await self._refill_now(project, bucket)  # also the first request of the project in this process
        if bucket.limit is None:
            return
        if bucket.tokens > 0:
            bucket.tokens -= 1
            if bucket.tokens <= bucket.limit.chunk // 2:
                self._refill_soon(project, bucket)
            return
        raise self._refusal(bucket, self.monotonic())

    def _refusal(self, bucket: _Bucket, now: float) -> errors.RateLimited:
        limit = bucket.limit
        rate = f"{limit.rate:g} requests per second, burst {limit.burst}" if limit else "the project's limit"
        return errors.RateLimited(
            f"rate limit exceeded ({rate})", headers={"Retry-After": retry_after(bucket.retry_at - now)}
        )

    async def _refill_now(self, project: str, bucket: _Bucket) -> None:
        """Take a chunk and wait for it (sharing a take already in flight)."""
        if bucket.refill is None or bucket.refill.done():
            bucket.refill = asyncio.create_task(self._take(project, bucket))
        await asyncio.shield(bucket.refill)

    def _refill_soon(self, project: str, bucket: _Bucket) -> None:
        """Take a chunk in the background (errors are ignored: the next request tries again)."""
        if self._closed or (bucket.refill is not None and not bucket.refill.done()):
            return
        bucket.refill = asyncio.create_task(self._take(project, bucket, background=True))

    async def _take(self, project: str, bucket: _Bucket, background: bool = False) -> None:
        want = bucket.limit.chunk if bucket.limit is not None else 1
        try:
            granted, limit, wait_ms = await take_tokens(self.scripts, project, want, self.clock())
        except Exception as exc:
            if not background:
                raise
            log.debug("background token take for %s failed: %s", project, exc)
            return
        now = self.monotonic()
        bucket.known_at = now
        bucket.limit = limit
        if limit is None:
            bucket.tokens = 0
            return
        bucket.tokens += granted
        if granted == 0:
            bucket.retry_at = now + wait_ms / 1000

    async def close(self) -> None:
        self._closed = True
        tasks = [b.refill for b in self._buckets.values() if b.refill is not None and not b.refill.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


# The index of limited projects (RATE_LIMITS, for `broker limits show`) is a global key, in another Cluster slot
# than the project's bucket, so it cannot be written by the bucket's script. It is kept self-healing instead:
# a project is added before its limit is set and removed after its limit is cleared, so the index covers every
# limited project, and an entry left without a limit (a crash in between) is skipped by list_limits.
async def set_limit(scripts: Scripts, redis: Any, project: str, rate: float, burst: int, now_ms: int) -> None:
    """Set ``project``'s limit (``broker limits set``)."""
    await answered(redis.sadd(RATE_LIMITS, project))
    await scripts.run(scripts.lua.set_rate_limit, [ProjectKeys(project).ratelimit], [now_ms, repr(float(rate)), burst])


async def clear_limit(scripts: Scripts, redis: Any, project: str, now_ms: int) -> bool:
    """Remove ``project``'s limit (``broker limits clear``); whether it had one."""
    removed = bool(await scripts.run(scripts.lua.set_rate_limit, [ProjectKeys(project).ratelimit], [now_ms, "", 0]))
    await answered(redis.srem(RATE_LIMITS, project))
    return removed


async def list_limits(redis: Any, projects: list[str] | None = None) -> list[tuple[str, Limit, float]]:
    """(project, limit, tokens in the bucket as last written) of ``projects`` or of every limited project."""
    if projects is None:
        members = await redis.smembers(RATE_LIMITS)
        projects = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
    found = []
    for project in projects:
        rate, burst, tokens = await redis.hmget(ProjectKeys(project).ratelimit, "rate", "burst", "tokens")
        if rate is None:
            continue
        found.append((project, Limit(rate=float(rate), burst=int(burst)), float(tokens or 0)))
    return found


class LongPollSlots:
    """The long polls one process serves at once, in all and per project. A request holds its slot until its
    task ends (uvicorn runs every request in a task of its own), so a long poll counts once however often it
    waits. The bound per project (``per_project``, default ``limit``) keeps one project's waiting consumers
    from taking every slot of the process: the others' long polls are still admitted."""

    def __init__(self, limit: int, per_project: int | None = None):
        self.limit = limit
        self.per_project = limit if per_project is None else min(per_project, limit)
        self._holders: dict[asyncio.Task[Any], str | None] = {}
        self._held: dict[str | None, int] = {}

    @property
    def in_use(self) -> int:
        return len(self._holders)

    def held_by(self, project: str | None) -> int:
        return self._held.get(project, 0)

    def admit(self, project: str | None = None) -> None:
        """Take a slot for the current request of ``project``, or raise ``RateLimited``."""
        task = asyncio.current_task()
        if task is None or task in self._holders:
            return
        held = self._held.get(project, 0)
        if held >= self.per_project:
            raise errors.RateLimited(
                f"this project already holds {self.per_project} waiting consumes (long polls) on this server; "
                "retry shortly or consume with wait_seconds 0",
                headers={"Retry-After": "1"},
            )
        if len(self._holders) >= self.limit:
            raise errors.RateLimited(
                f"this server already holds {self.limit} waiting consumes (long polls); retry shortly or "
                "consume with wait_seconds 0",
                headers={"Retry-After": "1"},
            )
        self._holders[task] = project
        self._held[project] = held + 1
        task.add_done_callback(self._release)

    def _release(self, task: asyncio.Task[Any]) -> None:
        if task not in self._holders:
            return
        project = self._holders.pop(task)
        left = self._held[project] - 1
        if left:
            self._held[project] = left
        else:
            del self._held[project]
