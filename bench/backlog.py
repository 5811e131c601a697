"""Figures about Redis and queue size: the Redis-alone ceiling of our scripts, the cost of a big backlog
(publish, consume, ack on a queue holding it vs an empty one), and Redis memory per message."""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

from bench.load import run_wrk
from bench.procs import RedisServer
from bench.redis_side import ScriptCalls, fill, pipelined, settled_memory

if TYPE_CHECKING:
    from bench.suite import Suite


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


def growth_case(suite: Suite, priority: bool, size: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One queue on a fresh stack: the backlog first (``size == "backlog"``; its memory cost measured on the
    way), then script costs, publish for the run's duration, and consume then ack of a fresh stock sized
    for the run (``consume_rate`` x 2.5 x seconds; a queue that runs dry is measured over its active time).
    """
    from bench.suite import PROJECT, api_stack

    c = suite.config
    kind = "prio_on" if priority else "prio_off"
    consume_rate = float(suite.results["ours"].get("consume_ack", {}).get("msg_rate") or 40_000)
    case: dict[str, Any] = {}
    memory_figure = None
    with api_stack(c, f"growth-{kind}-{size}") as (redis, api):
        queue = f"growth-{size}"
        api.create_queue(queue, priority=priority)
        calls = ScriptCalls(PROJECT)
        if size == "backlog":
            suite.log(f"growth ({kind}): loading {c.backlog:,} messages")
            memory_figure = memory(suite, redis, queue, c.backlog, priority)
        with redis.client() as client:
            calls.load(client)
        case["scripts"] = script_costs(suite, redis, calls, queue, priority)
        case["queue_before_publish"] = api.stats(queue).get("available")
        suite.log(f"growth ({kind}, {size}): publish, consume 100 (no ack), ack_batch of those leases")
        case["publish"] = run_wrk(api.url, "publish.lua", suite.args(queue, priorities=int(priority)),
                                  c.connections, c.seconds, c.wrk_threads).summary()
        with redis.client() as client:
            fill(client, calls, queue, suite.payload, int(consume_rate * 2.5 * c.seconds), priorities=priority)
        case["queue_before_consume"] = api.stats(queue).get("available")
        leases = suite.tmp / f"leases-{kind}-{size}"
        case["consume"] = run_wrk(api.url, "consume.lua", suite.args(queue, max=100, leases=leases),
                                  c.consume_connections, c.seconds, c.wrk_threads).summary()
        case["ack"] = run_wrk(api.url, "ack_batch.lua",
                              suite.args(queue, leases=leases, files=c.wrk_threads, threads=c.wrk_threads, batch=100),
                              c.consume_connections, c.seconds, c.wrk_threads).summary()
        case["queue_after"] = api.stats(queue).get("available")
    return case, memory_figure


def growth_section(suite: Suite) -> None:
    """Publish, consume and ack on a queue holding the backlog vs an empty one, priorities off and on."""
    for priority in (False, True):
        kind = "prio_on" if priority else "prio_off"
        suite.results["growth"][kind] = {}
        for size in ("empty", "backlog"):
            case, memory_figure = suite.measure(f"growth.{kind}.{size}",
                                                lambda p=priority, s=size: growth_case(suite, p, s))
            suite.results["growth"][kind][size] = case
            if memory_figure is not None:
                suite.results["memory"][kind] = memory_figure
