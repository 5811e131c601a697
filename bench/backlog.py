"""Figures about Redis and queue size: the Redis-alone ceiling of our scripts, the cost of a big backlog
(publish, consume, ack on a queue holding it vs an empty one), and Redis memory per message."""

from __future__ import annotations

import functools
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.load import run_wrk
from bench.procs import RedisServer
from bench.redis_side import ScriptCalls, fill, lease_all, pipelined, settled_memory

if TYPE_CHECKING:
    from bench.suite import Suite


def settle_aof(redis: RedisServer, timeout: float = 180.0) -> None:
    """Wait until no AOF rewrite runs or is scheduled. A rewrite (triggered when the AOF has doubled)
    forks and writes the whole dataset; on a small machine it would slow whichever measurement it
    overlaps, so each measurement starts after it."""
    deadline = time.monotonic() + timeout
    with redis.client() as client:
        while time.monotonic() < deadline:
            info = client.info("persistence")
            if not int(info.get("aof_rewrite_in_progress", 0)) and not int(info.get("aof_rewrite_scheduled", 0)):
                return
            time.sleep(0.2)


def latency_events(redis: RedisServer) -> dict[str, Any]:
    """Redis's latency monitor since its last reset: the worst event of each type (ms), and for the fsync
    of every write (appendfsync always) the median of the per-second maxima."""
    with redis.client() as client:
        latest = client.execute_command("LATENCY", "LATEST")
        history = client.execute_command("LATENCY", "HISTORY", "aof-fsync-always")
    events: dict[str, Any] = {}
    for row in latest:
        name = row[0].decode() if isinstance(row[0], bytes) else str(row[0])
        events[name] = {"max_ms": int(row[3])}
    maxima = sorted(int(r[1]) for r in history)
    if maxima:
        events.setdefault("aof-fsync-always", {})["per_second_max_ms_median"] = maxima[len(maxima) // 2]
        events["aof-fsync-always"]["seconds_with_event"] = len(maxima)
    return events


def redis_ceilings(suite: Suite, redis: RedisServer) -> dict[str, Any]:
    """Our scripts over one pipelined connection (as deep as the HTTP runs have connections): what Redis
    alone sustains, and its CPU time per call (INFO commandstats)."""
    from bench.suite import PROJECT

    c = suite.config
    seconds = min(c.seconds, 3)
    calls = ScriptCalls(PROJECT)
    out: dict[str, Any] = {}
    with redis.client() as client:
        calls.load(client)
        one = calls.publish("raw", [suite.payload])
        run, _ = pipelined(client, lambda: one, c.connections, seconds)
        out["publish"] = {"msg_rate": round(run.calls_per_second, 1),
                          "redis_usec_per_call": round(run.redis_usec_per_call, 2), "depth": c.connections}
        hundred = calls.publish("raw", [suite.payload] * 100)
        run, _ = pipelined(client, lambda: hundred, c.batch_connections, seconds)
        out["publish_batch"] = {"msg_rate": round(run.calls_per_second * 100, 1),
                                "redis_usec_per_call": round(run.redis_usec_per_call, 2), "depth": c.batch_connections}
        claim = calls.claim("raw", 100, 3_600_000)
        leases: list[tuple[str, str]] = []
        claim_seconds = 0.0
        claim_usec: list[float] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            run, replies = pipelined(client, [claim] * c.consume_connections, c.consume_connections)
            claim_seconds += run.seconds
            claim_usec.append(run.redis_usec_per_call)
            got = [(m.message_id, m.receipt or "") for reply in replies for m in calls.parse_claim("raw", reply)]
            leases += got
            if len(got) < 100 * c.consume_connections:
                break
        out["claim"] = {"msg_rate": round(len(leases) / claim_seconds, 1) if claim_seconds else 0.0,
                        "redis_usec_per_call": round(sum(claim_usec) / max(1, len(claim_usec)), 2),
                        "depth": c.consume_connections, "messages": len(leases)}
        acks = [calls.ack("raw", leases[i:i + 100]) for i in range(0, len(leases), 100)]
        run, _ = pipelined(client, acks, c.consume_connections)
        out["ack"] = {"msg_rate": round(len(leases) / run.seconds, 1) if run.seconds else 0.0,
                      "redis_usec_per_call": round(run.redis_usec_per_call, 2), "depth": c.consume_connections}
    return out


def memory(suite: Suite, redis: RedisServer, queue: str, count: int, priority: bool) -> dict[str, Any]:
    """INFO used_memory before and after publishing ``count`` messages: per message, and beyond the payload."""
    from bench.suite import PROJECT

    with redis.client() as client:
        calls = ScriptCalls(PROJECT)
        calls.load(client)
        before = settled_memory(client)
        rate = fill(client, calls, queue, suite.payload, count, priorities=priority)
        after = settled_memory(client)
    per_message = (after - before) / count
    return {"messages": count, "bytes_per_message": round(per_message, 1), "payload_bytes": len(suite.payload),
            "overhead_bytes": round(per_message - len(suite.payload), 1), "fill_rate": round(rate, 1)}


def script_costs(suite: Suite, redis: RedisServer, calls: ScriptCalls, queue: str, priority: bool,
                 count: int = 20_000) -> dict[str, Any]:
    """Redis CPU per script call (INFO commandstats) for ``count`` messages passing through the queue on top
    of what it holds: publish of 1, claim of 100, ack of 100."""
    rng = random.Random(11)
    c = suite.config
    with redis.client() as client:
        publishes = [calls.publish(queue, [suite.payload], [rng.randint(0, 9)] if priority else None)
                     for _ in range(count)]
        publish, _ = pipelined(client, publishes, c.connections)
        claims = [calls.claim(queue, 100, 3_600_000)] * (count // 100)
        claim, replies = pipelined(client, claims, c.consume_connections)
        leases = [(m.message_id, m.receipt or "") for r in replies for m in calls.parse_claim(queue, r)]
        acks = [calls.ack(queue, leases[i:i + 100]) for i in range(0, len(leases), 100)]
        ack, _ = pipelined(client, acks, c.consume_connections)
    return {"publish_usec": round(publish.redis_usec_per_call, 2), "claim100_usec": round(claim.redis_usec_per_call, 2),
            "ack100_usec": round(ack.redis_usec_per_call, 2), "messages": count}


def write_leases(path: Path, leases: list[tuple[str, str]]) -> None:
    """The lease file ``ack_batch.lua`` reads (one wrk thread: ``<prefix>.0``)."""
    Path(f"{path}.0").write_text("".join(f"{i} {r}\n" for i, r in leases))


def ack_leases(redis: RedisServer, calls: ScriptCalls, queue: str, prefix: Path, depth: int) -> int:
    """Ack every lease ``consume.lua`` wrote to ``<prefix>.<thread>`` (100 per call, pipelined); how many."""
    leases: list[tuple[str, str]] = []
    for path in prefix.parent.glob(f"{prefix.name}.*"):
        for line in path.read_text().splitlines():
            message_id, _, receipt = line.partition(" ")
            if receipt:
                leases.append((message_id, receipt))
    acks = [calls.ack(queue, leases[n:n + 100]) for n in range(0, len(leases), 100)]
    if acks:
        with redis.client() as client:
            pipelined(client, acks, depth)
    return len(leases)


def growth_section(suite: Suite) -> None:
    """Publish, consume and ack on a queue holding the backlog vs an empty one, priorities off and on."""
    for priority in (False, True):
        growth_mode(suite, priority)


def growth_mode(suite: Suite, priority: bool) -> None:
    """Both queues live in one Redis behind one API, and the two sides of each ratio are measured one right
    after the other (each retried on its own when other processes disturbed it), so a change in what else
    runs on the machine hits both sides alike. Before consume, each queue gets the same stock of fresh
    messages (the consume rate measured so far x 2 x seconds): the empty queue drains it, the backlog
    queue stays above the backlog. Each ack attempt settles a fresh stock leased just before (claim script).

    With priorities on, the consume pair is a target (``backlog_consume_prio``): the Redis cost per script
    call and the consume pair are measured ``repeats`` times on the loaded backlog (never loaded again), the
    leases of each consume acked before the next, so that both queues hold what they held before. With
    ``only_targets``, priorities off only load the backlog (for the memory per message) and priorities on
    measure the consume pair alone.
    """
    from bench.suite import PROJECT, api_stack, best, ratio

    c = suite.config
    sizes = ("empty", "backlog")
    kind = "prio_on" if priority else "prio_off"
    cases: dict[str, dict[str, Any]] = {size: {} for size in sizes}
    suite.results["growth"][kind] = cases
    with api_stack(c, f"growth-{kind}") as (redis, api):
        calls = ScriptCalls(PROJECT)
        for size in sizes:
            api.create_queue(size, priority=priority)
        suite.log(f"growth ({kind}): loading {c.backlog:,} messages into the backlog queue")
        suite.results["memory"][kind] = memory(suite, redis, "backlog", c.backlog, priority)
        if c.only_targets and not priority:
            return
        settle = functools.partial(settle_aof, redis)

        def costs(queue: str) -> dict[str, Any]:
            return script_costs(suite, redis, calls, queue, priority)

        def ack(queue: str) -> dict[str, Any]:
            leases_file = suite.tmp / f"leases-{kind}-{queue}"
            count = stock()
            with redis.client() as client:
                fill(client, calls, queue, suite.payload, count, priorities=priority)
                write_leases(leases_file, lease_all(client, calls, queue, count))
            settle_aof(redis)
            return run_wrk(api.url, "ack_batch.lua",
                           suite.args(queue, leases=leases_file, files=1, threads=c.wrk_threads, batch=100),
                           c.consume_connections, c.seconds, c.wrk_threads).summary()

        consumed: list[float] = []

        def stock() -> int:
            rate = max(consumed, default=0.0) or float(
                suite.results["ours"].get("consume_ack", {}).get("msg_rate") or 40_000)
            return int(rate * 2 * c.seconds)

        if not c.only_targets:
            suite.log(f"growth ({kind}): publish, empty then backlog queue")
            for size in sizes:
                cases[size]["queue_before_publish"] = api.stats(size).get("available")
                cases[size]["publish"] = suite.wrk(f"growth.{kind}.{size}.publish", api.url, "publish.lua",
                                                   suite.args(size, priorities=int(priority)), c.connections,
                                                   settle=settle).summary()
        count = max(1, c.repeats) if priority else 1
        repeats: list[dict[str, Any]] = []
        if priority:
            suite.results["repeats"]["backlog_consume_prio"] = repeats
        for number in range(1, count + 1):
            suffix = f".{number}" if count > 1 else ""
            measured: dict[str, dict[str, Any]] = {size: {} for size in sizes}
            suite.log(f"growth ({kind}): Redis CPU per script call, then consume 100 without ack, empty then backlog "
                      f"queue" + (f" (repeat {number}/{count})" if count > 1 else ""))
            for size in sizes:
                measured[size]["scripts"] = suite.measure(f"growth.{kind}.{size}.scripts{suffix}",
                                                          functools.partial(costs, size), settle=settle)
            fresh = stock()
            with redis.client() as client:
                for size in sizes:
                    fill(client, calls, size, suite.payload, fresh, priorities=priority)
            for size in sizes:
                measured[size]["queue_before_consume"] = api.stats(size).get("available")
                measured[size]["consume"] = suite.wrk(
                    f"growth.{kind}.{size}.consume{suffix}", api.url, "consume.lua",
                    suite.args(size, max=100, leases=suite.tmp / f"consumed-{kind}-{size}{suffix}"),
                    c.consume_connections, settle=settle).summary()
            consumed.append(float(measured["empty"]["consume"].get("msg_rate") or 0))
            if number < count:  # the next repeat finds both queues as this one did
                for size in sizes:
                    ack_leases(redis, calls, size, suite.tmp / f"consumed-{kind}-{size}{suffix}",
                               c.consume_connections)
            repeats.append(measured)
        kept = best(repeats, lambda r: ratio(r["backlog"]["consume"].get("msg_rate"),
                                             r["empty"]["consume"].get("msg_rate")))
        for size in sizes:
            cases[size].update(kept[size])
        if not c.only_targets:
            suite.log(f"growth ({kind}): ack_batch of 100, empty then backlog queue")
            for size in sizes:
                cases[size]["ack"] = suite.measure(f"growth.{kind}.{size}.ack", functools.partial(ack, size))
                cases[size]["queue_after"] = api.stats(size).get("available")
