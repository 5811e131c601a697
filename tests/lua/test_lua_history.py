"""The per-minute history the scripts keep (the queue's "hist" hash, flush_tallies in lua/include/lifecycle.lua):
every script that writes it finds `now` in ARGV[3], it stays within a day of minutes however long a queue is
idle, and a call that moved nothing writes nothing."""

from __future__ import annotations

import re
from typing import Any

from scriptkit import MakeQueue

from broker.store.scripts import LUA_DIR


def test_every_script_that_flushes_tallies_has_now_in_argv_3() -> None:
    flushing = [p for p in sorted(LUA_DIR.glob("*.lua")) if "flush_tallies()" in p.read_text()]
    assert len(flushing) >= 10
    for path in flushing:
        assert re.search(r"^-- ARGV\[3\]\s+now, ms$", path.read_text(), re.M), path.name


async def test_the_history_is_bounded_to_a_day(make_queue: MakeQueue, clock: Any, redis_client: Any) -> None:
    jobs = await make_queue("jobs")
    hist = jobs.keys.hist
    for _ in range(30):  # a publish every 50 minutes for 25 hours: 30 minutes written, 29 or 30 kept
        await jobs.publish(1)
        clock.advance(50 * 60)
    minutes = {int(f.replace(b"+", b":").split(b":")[0]) for f in await redis_client.hkeys(hist) if f != b"last"}
    now_minute = (clock.ms - 50 * 60_000) // 60_000
    assert minutes and min(minutes) > now_minute - 1440 and len(minutes) in (28, 29)
    clock.advance(3 * 86400)  # idle for three days, then one change: only that minute is left
    await jobs.publish(1)
    assert sorted(await redis_client.hkeys(hist)) == sorted(
        [f"{clock.ms // 60_000}+p".encode(), f"{clock.ms // 60_000}:d".encode(), b"last"])
    assert int(await redis_client.hget(hist, f"{clock.ms // 60_000}:d")) == 31


async def test_calls_that_move_nothing_write_no_history(make_queue: MakeQueue, redis_client: Any) -> None:
    jobs = await make_queue("jobs")
    assert await jobs.claim() == []
    assert await jobs.purge() == 0
    assert await jobs.redrive() == 0
    await jobs.stats()
    assert not await redis_client.exists(jobs.keys.hist)


async def test_a_purge_samples_the_depth(make_queue: MakeQueue, clock: Any, redis_client: Any) -> None:
    jobs = await make_queue("jobs")
    await jobs.publish(1, 2, 3)
    clock.advance(60)
    assert await jobs.purge() == 3
    assert await redis_client.hget(jobs.keys.hist, f"{clock.ms // 60_000}:d") == b"0"


async def test_deleting_the_queue_deletes_its_history(make_queue: MakeQueue, store: Any, project: str,
                                                      redis_client: Any) -> None:
    jobs = await make_queue("jobs")
    await jobs.publish(1)
    assert await redis_client.exists(jobs.keys.hist)
    assert await store.delete_queue(project, "jobs")
    assert not await redis_client.exists(jobs.keys.hist)
