"""Replicated acknowledgement on the pipelined connection, against the test Redis (which has no replica, so
every WAIT answers 0 at its timeout): a replicated call fails with ReplicaAckError (503) after about the
bound, a call that does not wait for replicas is answered as before, and calls issued while a WAIT is out are
held and share the next WAIT instead of each queueing a WAIT of its own behind it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from support import REDIS_URL

from broker.store.failures import ReplicaAckError, store_failure
from broker.store.pipeline import ScriptPipe

TIMEOUT_MS = 200


@pytest.fixture
async def pipe() -> Any:
    client = aioredis.Redis.from_url(REDIS_URL)
    info = await client.info("replication")
    if int(info.get("connected_slaves", 0)):
        pytest.skip("the test Redis has replicas")
    sha = await client.script_load("return tonumber(ARGV[1])")
    pipe = ScriptPipe(client.connection_pool, 3.0, replicas=1, replica_timeout_ms=TIMEOUT_MS)
    yield pipe, sha
    await pipe.close()
    await client.aclose()


async def test_a_replicated_call_fails_after_the_bound_and_others_are_answered(pipe: Any) -> None:
    pipe, sha = pipe
    assert await pipe.evalsha(sha, [], ["7"]) == 7
    started = time.monotonic()
    with pytest.raises(ReplicaAckError) as caught:
        await pipe.evalsha(sha, [], ["8"], replicated=True)
    took = time.monotonic() - started
    assert TIMEOUT_MS / 1000 * 0.9 <= took < 2, took
    assert (caught.value.acked, caught.value.wanted) == (0, 1)
    mapped = store_failure(caught.value)
    assert (mapped.status, mapped.code) == (503, "UNAVAILABLE") and "replicas" in mapped.message
    assert await pipe.evalsha(sha, [], ["9"]) == 9


async def test_calls_issued_during_a_wait_share_the_next_one(pipe: Any) -> None:
    pipe, sha = pipe

    async def call(i: int) -> float:
        await asyncio.sleep(i * 0.02)  # each on a later turn of the loop: a batch of its own without holding
        started = time.monotonic()
        with pytest.raises(ReplicaAckError):
            await pipe.evalsha(sha, [], [str(i)], replicated=True)
        return time.monotonic() - started

    began = time.monotonic()
    waits = await asyncio.gather(*(call(i) for i in range(15)))
    total = time.monotonic() - began
    # Without holding, the 15 WAITs would run one after another on the server: about 15 x 0.2 s = 3 s.
    assert total < 1.6, (total, waits)
    assert max(waits) < 4 * TIMEOUT_MS / 1000, waits
    assert await pipe.evalsha(sha, [], ["1"]) == 1


async def test_a_connection_lost_while_a_wait_is_out_fails_the_calls_it_held() -> None:
    """The primary dies while a batch's WAIT is out: its scripts have answered, their calls wait for the WAIT.
    The lost connection must fail them at once (503), not leave them waiting for an answer that never comes."""
    client = aioredis.Redis.from_url(REDIS_URL)
    killer = aioredis.Redis.from_url(REDIS_URL)
    try:
        info = await client.info("replication")
        if int(info.get("connected_slaves", 0)):
            pytest.skip("the test Redis has replicas")
        sha = await client.script_load("return tonumber(ARGV[1])")
        pipe = ScriptPipe(client.connection_pool, 5.0, replicas=1, replica_timeout_ms=3000)
        try:
            assert await pipe.evalsha(sha, [], ["1"]) == 1  # connected
            calls = [pipe.evalsha(sha, [], [str(i)], replicated=True) for i in range(3)]
            await asyncio.sleep(0.3)  # the scripts have answered; the WAIT blocks for up to 3 s
            assert not any(call.done() for call in calls)
            host, port = pipe._writer.get_extra_info("sockname")[:2]  # type: ignore[union-attr]
            started = time.monotonic()
            assert await killer.client_kill(f"{host}:{port}")  # this test's own connection only
            outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 2)
            took = time.monotonic() - started
            assert all(isinstance(o, redis_errors.ConnectionError) for o in outcomes), outcomes
            assert took < 1, took  # at once, not at the WAIT's timeout
            mapped = store_failure(outcomes[0])  # type: ignore[arg-type]
            assert (mapped.status, mapped.code) == (503, "UNAVAILABLE")
            assert await pipe.evalsha(sha, [], ["2"]) == 2  # and the next call connects again
        finally:
            await pipe.close()
    finally:
        await client.aclose()
        await killer.aclose()
