"""Rate limits in process: the token-bucket script, the per-process chunked limiter (one Redis round trip
per request in the steady state), the long-poll slots, and the 429 the API answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from broker import errors
from broker.store.keys import ProjectKeys
from broker.store.ratelimit import Limit, LongPollSlots, RateLimiter, clear_limit, list_limits, set_limit, take_tokens
from broker.store.scripts import Scripts

T0 = 1_800_000_000_000  # ms


class Clocks:
    """Wall (ms) and monotonic (s) clocks that tests move together."""

    def __init__(self) -> None:
        self.ms = T0

    def wall(self) -> int:
        return self.ms

    def mono(self) -> float:
        return self.ms / 1000

    def advance(self, seconds: float) -> None:
        self.ms += round(seconds * 1000)


class CountingScripts(Scripts):
    def __init__(self, redis: Any):
        super().__init__(redis)
        self.calls: dict[str, int] = {}

    async def run(self, script: Any, keys: Any, args: Any) -> Any:
        self.calls[script.name] = self.calls.get(script.name, 0) + 1
        return await super().run(script, keys, args)


@pytest.fixture
async def scripts(redis_client: Any) -> AsyncIterator[CountingScripts]:
    s = CountingScripts(redis_client)
    await s.load()
    yield s
    await s.close()


def limiter(scripts: Scripts, clocks: Clocks) -> RateLimiter:
    return RateLimiter(scripts, clock=clocks.wall, monotonic=clocks.mono)


async def settled(lim: RateLimiter) -> None:
    """Wait until the limiter's token takes in flight (its background re-checks) have finished."""
    await asyncio.gather(*(b.refill for b in lim._buckets.values() if b.refill is not None))


async def admitted(lim: RateLimiter, project: str, attempts: int) -> int:
    count = 0
    for _ in range(attempts):
        try:
            await lim.admit(project)
            count += 1
        except errors.RateLimited:
            pass
    return count


# --- the script ------------------------------------------------------------------------------------
async def test_no_limit_grants_nothing_and_writes_nothing(scripts: Scripts, project: str, redis_client: Any) -> None:
    assert await take_tokens(scripts, project, 10, T0) == (0, None, 0)
    assert not await redis_client.exists(ProjectKeys(project).ratelimit)


async def test_the_bucket_grants_its_burst_then_refills_at_its_rate(scripts: Scripts, project: str,
                                                                   redis_client: Any) -> None:
    await set_limit(scripts, redis_client, project, 10, 25, T0)
    assert await take_tokens(scripts, project, 20, T0) == (20, Limit(10.0, 25), 0)
    assert await take_tokens(scripts, project, 20, T0) == (5, Limit(10.0, 25), 0)
    granted, _, wait_ms = await take_tokens(scripts, project, 20, T0)
    assert (granted, wait_ms) == (0, 100)  # one token takes 1/10 s
    assert (await take_tokens(scripts, project, 20, T0 + 350))[0] == 3
    assert (await take_tokens(scripts, project, 20, T0 + 100_000))[0] == 20  # capped at the burst
    assert (await take_tokens(scripts, project, 20, T0 + 100_000))[0] == 5
    assert (await take_tokens(scripts, project, 20, T0 + 90_000))[0] == 0  # a clock behind refills nothing
    assert [(p, lim) for p, lim, _ in await list_limits(redis_client, [project])] == [(project, Limit(10.0, 25))]
    assert await clear_limit(scripts, redis_client, project, T0)
    assert await take_tokens(scripts, project, 20, T0) == (0, None, 0)
    assert not await clear_limit(scripts, redis_client, project, T0)


async def test_changing_a_limit_keeps_the_tokens_left(scripts: Scripts, project: str, redis_client: Any) -> None:
    await set_limit(scripts, redis_client, project, 1, 10, T0)
    assert (await take_tokens(scripts, project, 8, T0))[0] == 8
    await set_limit(scripts, redis_client, project, 1, 100, T0)  # not a fresh full bucket
    assert (await take_tokens(scripts, project, 100, T0))[0] == 2
    await clear_limit(scripts, redis_client, project, T0)


@pytest.mark.parametrize(("rate", "burst"), [("0", 1), ("-1", 1), ("nan", 1), ("inf", 1), ("abc", 1), ("1", 0),
                                             ("1", "x"), ("1e10", 1)])
async def test_malformed_limits_are_refused(scripts: Scripts, project: str, redis_client: Any, rate: str,
                                            burst: Any) -> None:
    key = ProjectKeys(project).ratelimit
    with pytest.raises(errors.InternalError):
        await scripts.run(scripts.lua.set_rate_limit, [key], [T0, rate, burst])
    assert not await redis_client.exists(key)


async def test_a_malformed_bucket_is_an_error_not_unlimited(scripts: Scripts, project: str, redis_client: Any) -> None:
    key = ProjectKeys(project).ratelimit
    await redis_client.hset(key, mapping={"rate": "fast", "burst": "10"})
    with pytest.raises(errors.InternalError):
        await take_tokens(scripts, project, 1, T0)
    await redis_client.delete(key)


# --- the limiter -----------------------------------------------------------------------------------
async def test_an_unlimited_project_costs_one_lookup_per_second(scripts: CountingScripts, project: str) -> None:
    clocks = Clocks()
    lim = limiter(scripts, clocks)
    assert await admitted(lim, project, 1000) == 1000
    assert scripts.calls.get("take_tokens") == 1
    clocks.advance(1.5)
    assert await admitted(lim, project, 1000) == 1000
    await settled(lim)  # the background re-check
    assert scripts.calls.get("take_tokens") == 2
    await lim.close()


async def test_a_limited_project_gets_exactly_its_burst_then_its_rate(scripts: CountingScripts, project: str,
                                                                      redis_client: Any) -> None:
    clocks = Clocks()
    await set_limit(scripts, redis_client, project, 100, 50, clocks.wall())
    lim = limiter(scripts, clocks)
    assert await admitted(lim, project, 200) == 50
    takes = scripts.calls["take_tokens"]
    assert takes <= 50 // Limit(100, 50).chunk + 3, takes  # tokens come in chunks, not one round trip each
    with pytest.raises(errors.RateLimited) as refused:
        await lim.admit(project)
    assert refused.value.headers["Retry-After"] == "1"
    assert scripts.calls["take_tokens"] == takes  # refused locally, without asking Redis again
    clocks.advance(0.2)  # 20 tokens
    await settled(lim)
    assert await admitted(lim, project, 100) == 20
    clocks.advance(10)
    assert await admitted(lim, project, 100) == 50  # the burst again, not 1000
    await lim.close()
    await clear_limit(scripts, redis_client, project, clocks.wall())


async def test_processes_share_one_bucket(scripts: CountingScripts, project: str, redis_client: Any) -> None:
    clocks = Clocks()
    await set_limit(scripts, redis_client, project, 1000, 300, clocks.wall())
    limiters = [limiter(scripts, clocks) for _ in range(4)]
    counts = await asyncio.gather(*(admitted(lim, project, 200) for lim in limiters))
    # Never more than the bucket, whichever process asks; at most a chunk per process left unspent.
    assert 300 - 4 * Limit(1000, 300).chunk <= sum(counts) <= 300, counts
    for lim in limiters:
        await lim.close()
    await clear_limit(scripts, redis_client, project, clocks.wall())


async def test_a_new_limit_applies_within_a_second(scripts: CountingScripts, project: str,
                                                   redis_client: Any) -> None:
    clocks = Clocks()
    lim = limiter(scripts, clocks)
    assert await admitted(lim, project, 10) == 10
    await set_limit(scripts, redis_client, project, 1, 5, clocks.wall())
    clocks.advance(1.1)
    await lim.admit(project)  # still believed unlimited; starts the re-check
    await settled(lim)
    assert await admitted(lim, project, 20) <= 5
    await lim.close()
    await clear_limit(scripts, redis_client, project, clocks.wall())


async def test_the_api_answers_429_with_retry_after(app_factory: Any, project: str, redis_client: Any) -> None:
    (api,) = await app_factory(project)
    scripts = Scripts(redis_client, coalesce=False)
    await set_limit(scripts, redis_client, project, 0.5, 3, int(time.time() * 1000))
    statuses = [(await api.get("/v1/queue/list")).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    refused = await api.get("/v1/queue/list")
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"]["code"] == "RATE_LIMITED" and "0.5 requests per second" in body["error"]["message"]
    assert body["error"]["request_id"] == refused.headers["x-request-id"]
    assert refused.headers["retry-after"] in ("1", "2")
    await clear_limit(scripts, redis_client, project, int(time.time() * 1000))


# --- long polls ------------------------------------------------------------------------------------
async def test_long_poll_slots_are_held_by_requests_until_they_end() -> None:
    slots = LongPollSlots(2)
    release = asyncio.Event()
    results: list[str] = []

    async def request() -> None:
        try:
            slots.admit()
            slots.admit()  # the same request asking again keeps its one slot
        except errors.RateLimited as exc:
            results.append(f"429 {exc.headers['Retry-After']}")
            return
        results.append("admitted")
        await release.wait()

    first = [asyncio.create_task(request()) for _ in range(2)]
    await asyncio.sleep(0)
    assert slots.in_use == 2
    await request()
    assert results == ["admitted", "admitted", "429 1"]
    release.set()
    await asyncio.gather(*first)
    await asyncio.sleep(0)
    assert slots.in_use == 0
    await asyncio.create_task(request())
    assert results[-1] == "admitted"
