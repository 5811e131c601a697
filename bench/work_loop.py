"""The single-message work loop against BullMQ's Worker, in interleaved rounds (``work_loop`` in the results).

Three sides (the first and the last alone with ``only_targets``), each measured for ``seconds`` per round,
``repeats`` rounds, the order reversed every other round so that whatever else runs on the machine meanwhile
hits every side alike:

- **ours, ack on the next consume**: ``consume_ack.lua`` with ``max=1 ackon=1 wait=1``: a long-poll consume of
  one message whose body carries the ack of the message the previous consume brought (one request per
  message, as the client's ``Consumer`` works);
- **ours, ack as its own request**: ``max=1 single=1 wait=1``: consume 1, then ``POST /v1/queue/ack`` (two
  requests per message: the loop before the ``ack`` extension);
- **BullMQ**: one ``Worker`` (``concurrency`` 50, a no-op processor, jobs removed on completion) on a stock
  ``prefill`` put in before the round (not timed).

Ours run against one API and Redis (the main section's setup), BullMQ against its own Redis with the same AOF
settings. Before each round every side gets a fresh stock (publish_batch for ours, BullMQ's addBulk), more
than a round consumes. A side's figure is the median of its rounds; the ratio is the median of the per-round
ratios. The target (ours with the ack on the next consume / BullMQ >= 1) is the best per-round ratio, with the
spread of the rounds (``bench.targets``)."""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bench.backlog import settle_aof
from bench.load import run_wrk
from bench.peers import bullmq_peer
from bench.procs import redis_server

if TYPE_CHECKING:
    from bench.suite import Suite

SIDES = ("ackon", "separate", "bullmq")


def section(suite: Suite) -> None:
    from bench.suite import api_stack, payload_text

    c = suite.config
    out: dict[str, Any] = {"rounds": [], "seconds": c.seconds, "connections": c.connections,
                           "concurrency": c.worker_concurrency}
    suite.results["work_loop"] = out
    if not bullmq_peer.installed() and c.peers != "off" and not c.quick:
        suite.log("installing BullMQ (npm ci into bench/.cache/bullmq)")
        bullmq_peer.install()
    if not bullmq_peer.installed():
        suite.note("work loop vs BullMQ not measured: BullMQ is not installed (the full run installs it)")
        return
    rounds = max(1, c.repeats)
    sides = ("ackon", "bullmq") if c.only_targets else SIDES
    # Enough stock for a round at a generous rate: a side that runs dry is measured over its active time.
    stock = max(20_000, 12_000 * c.seconds)
    with api_stack(c, "workloop") as (redis, api), redis_server("bullmq-workloop") as bull_redis:
        for queue in ("wl-ackon", "wl-separate"):
            api.create_queue(queue)
        settle = functools.partial(settle_aof, redis)
        bull_settle = functools.partial(settle_aof, bull_redis)
        base = {"port": bull_redis.port, "payload": payload_text(), "seconds": c.seconds, "queue": "workloop"}

        def ours(mode: str) -> dict[str, Any]:
            queue = f"wl-{mode}"
            have = int(api.stats(queue).get("available") or 0)
            if have < stock:
                run_wrk(api.url, "publish_batch.lua", suite.args(queue, batch=100), c.batch_connections,
                        max(2, c.seconds // 2), c.wrk_threads)
            extra = {"ackon": 1} if mode == "ackon" else {"single": 1}
            result = run_wrk(api.url, "consume_ack.lua", suite.args(queue, max=1, wait=1, **extra), c.connections,
                             c.seconds, c.wrk_threads)
            return {**result.summary(), "stock": max(have, int(api.stats(queue).get("available") or 0))}

        def bullmq() -> dict[str, Any]:
            bullmq_peer.Node("prefill", {**base, "count": stock}, c.seconds + 300).result()
            bull_settle()
            result = bullmq_peer.Node("work", {**base, "concurrency": c.worker_concurrency}, c.seconds + 120).result()
            return {**result, "msg_rate": bullmq_peer.job_rate(result)}

        runs: dict[str, Callable[[], dict[str, Any]]] = {
            "ackon": functools.partial(ours, "ackon"), "separate": functools.partial(ours, "separate"),
            "bullmq": bullmq}
        for number in range(rounds):
            order = sides if number % 2 == 0 else tuple(reversed(sides))
            suite.log(f"work loop round {number + 1}/{rounds}: {', '.join(order)}")
            measured: dict[str, Any] = {}
            for side in order:
                measured[side] = suite.measure(f"work_loop.{side}.{number + 1}", runs[side],
                                               settle=settle if side != "bullmq" else None)
            out["rounds"].append(measured)
    for side in sides:
        out[side] = {"msg_rate": statistics.median(float(r[side]["msg_rate"]) for r in out["rounds"])}
    per_round = [r["ackon"]["msg_rate"] / r["bullmq"]["msg_rate"] for r in out["rounds"] if r["bullmq"]["msg_rate"]]
    separate = [r["separate"]["msg_rate"] / r["bullmq"]["msg_rate"] for r in out["rounds"]
                if r.get("separate") and r["bullmq"]["msg_rate"]]
    gain = [r["ackon"]["msg_rate"] / r["separate"]["msg_rate"] for r in out["rounds"]
            if r.get("separate") and r["separate"]["msg_rate"]]
    out["ratio"] = statistics.median(per_round) if per_round else None
    out["separate_ratio"] = statistics.median(separate) if separate else None
    out["ackon_vs_separate"] = statistics.median(gain) if gain else None
    separately = f", as its own request {out['separate']['msg_rate']:,.0f}" if "separate" in out else ""
    suite.log(f"work loop: ack on consume {out['ackon']['msg_rate']:,.0f} msgs/s{separately}, BullMQ Worker "
              f"{out['bullmq']['msg_rate']:,.0f} jobs/s; ratio {out['ratio']}")
