"""What one worker process's maintenance moves per second: due delays promoted and ended leases reaped, by
the job ``broker worker`` runs (``Maintenance.maintain_queue``: ``maintain.lua`` called with the job's limit
until a call moves less), against a private durable redis-server (AOF, fsync always).

    .venv/bin/python -m bench.worker_jobs [--messages 20000] [--rounds 3]

Each round fills one queue per kind (delayed messages; messages leased with a lease that has ended), then
times the job over it with a clock moved past every due time. The ceiling, measured in the same rounds, is
Redis's own time for the same calls (``INFO commandstats``: microseconds of EVALSHA): the rate a worker would
reach if its process and the round trips cost nothing. Rounds interleave the kinds; the median is printed,
with the cores other processes used meanwhile (the machine may be shared).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import redis.asyncio as aioredis

from bench.machine import CpuMeter
from bench.procs import redis_server
from broker.jobs.maintenance import Maintenance
from broker.schemas import CreateQueueRequest
from broker.store.queues import OutgoingMessage, Store
from broker.store.scripts import Scripts

PROJECT = "bench-worker"
BATCH = 500
LATER_MS = 3_600_000  # the job's clock: an hour on, past every delay and lease of the fill


async def evalsha_usec(client: Any) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("usec", 0))


async def fill(store: Store, queue: str, kind: str, messages: int) -> None:
    await store.create_queue(PROJECT, CreateQueueRequest(name=queue))
    delay = 1_000 if kind == "promote" else 0
    for start in range(0, messages, BATCH):
        batch = [OutgoingMessage(b'{"n":%d}' % n, delay_ms=delay) for n in range(start, min(messages, start + BATCH))]
        await store.publish(PROJECT, queue, batch, batch=True)
    if kind == "reap":
        leased = 0
        while leased < messages:
            got, _ = await store.claim(PROJECT, queue, 100, 600_000)  # no lease ends during the fill
            if not got:
                raise RuntimeError("the fill leased fewer messages than it published")
            leased += len(got)


async def one(client: Any, kind: str, messages: int, round_no: int) -> dict[str, float]:
    store = Store(client, Scripts(client))
    queue = f"{kind}-{round_no}"
    await fill(store, queue, kind, messages)
    later = Store(client, store.scripts, clock=lambda: int(time.time() * 1000) + LATER_MS)
    job = Maintenance(later, [PROJECT], max_rounds=1_000_000)  # the job's pace, not its per-sweep cap
    meter = CpuMeter()
    usec = await evalsha_usec(client)
    started = time.perf_counter()
    moved = 0
    while moved < messages:  # the job's later sweeps, back to back
        step = await job.maintain_queue(PROJECT, queue)
        if step == 0:
            break
        moved += step
    seconds = time.perf_counter() - started
    redis_seconds = (await evalsha_usec(client) - usec) / 1e6
    load = meter.stop()
    await store.scripts.close()
    if moved < messages:
        raise RuntimeError(f"{kind}: the job moved {moved} of {messages}")
    return {"per_s": moved / seconds, "ceiling_per_s": moved / max(redis_seconds, 1e-9),
            "other_cores": load.get("other_cores", float("nan"))}


async def main(messages: int, rounds: int) -> None:
    with redis_server("worker-jobs") as server:
        client = aioredis.Redis.from_url(server.url)
        try:
            results: dict[str, list[dict[str, float]]] = {"promote": [], "reap": []}
            for round_no in range(rounds):
                for kind in (("promote", "reap") if round_no % 2 == 0 else ("reap", "promote")):
                    results[kind].append(await one(client, kind, messages, round_no))
        finally:
            await client.aclose()
    print(f"maintenance of one worker process, {messages} messages per queue, median of {rounds} rounds")
    print("| job | messages/s | ceiling (Redis's EVALSHA time alone) | share of the ceiling | other processes' cores |")
    print("|---|---|---|---|---|")
    names = {"promote": "due delays promoted", "reap": "ended leases reaped"}
    for kind, rows in results.items():
        rate = statistics.median(r["per_s"] for r in rows)
        ceiling = statistics.median(r["ceiling_per_s"] for r in rows)
        other = statistics.median(r["other_cores"] for r in rows)
        print(f"| {names[kind]} | {rate:,.0f} | {ceiling:,.0f} | {rate / ceiling:.0%} | {other:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.rounds))
