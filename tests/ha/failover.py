"""The failover run: ``broker serve`` on a replicated store (a Sentinel shard or a Redis Cluster with a replica
per primary), publishers and consumers recording their whole history (the fault suite's workload and queue
checker, tests/faults/loadgen.py), and the primary SIGKILLed again and again while the load runs. The API
process is never restarted: it must find the new primary by itself. At the end the queue is drained and the
checker runs over the whole history: with ``BROKER_REPLICA_ACKS=1`` nothing acknowledged may be lost; without
it the loss is measured and reported."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from loadgen import History, Verdict, Workload, check
from support import eventually
from support.fleet import Fleet


class Replicated(Protocol):
    url: str

    def failover(self, timeout: float = 60) -> dict[str, float]: ...


@dataclass
class FailoverConfig:
    failovers: int = 2
    replica_acks: int = 1
    calm_seconds: float = 3.0
    publishers: int = 3
    consumers: int = 3
    visibility: float = 3.0
    seed: int = 1
    drain_stall: float = 30.0


@dataclass
class FailoverResult:
    config: FailoverConfig
    history: History
    verdict: Verdict
    timings: list[dict[str, float]]
    final_stats: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    bound_hits: int = 0  # requests answered 503 by the answer's backstop bound (broker/http/bound.py)

    def figures(self) -> dict[str, Any]:
        v = self.verdict
        return {
            "failovers": len(self.timings),
            "replica_acks": self.config.replica_acks,
            "operations": self.history.ops,
            "seconds": round(self.seconds, 1),
            "acknowledged": v.acknowledged,
            "indeterminate": v.indeterminate,
            "lost": len(v.lost),
            "maybe_acked": len(v.maybe_acked),
            "never_delivered": len(v.never_delivered),
            "unexpected": len(v.unexpected),
            "duplicates": v.duplicates,
            "server_errors": self.history.server_errors[:10],
            "hangs": self.history.hangs[:10],
            "answer_bound_hits": self.bound_hits,
            "max_promotion_s": max((t["promoted_s"] for t in self.timings), default=0),
            "max_ready_s": max((t["ready_s"] for t in self.timings), default=0),
            "responses": {f"{op} {status}": n for (op, status), n in sorted(self.history.statuses.items())},
            "problems": self.problems,
            "lost_trails": {pid: self.history.trail(pid) for pid in v.lost[:5]},
        }

    def table(self) -> str:
        lines = [f"failover run: {len(self.timings)} failovers, replica acks {self.config.replica_acks}, "
                 f"{self.history.ops} operations in {self.seconds:.0f} s", self.verdict.summary()]
        for i, t in enumerate(self.timings, 1):
            lines.append(f"  failover {i}: promoted after {t['promoted_s']:.2f} s, reads served again after "
                         f"{t['ready_s']:.2f} s, old primary back as a replica after {t['replica_back_s']:.2f} s")
        lines.append(f"requests answered 503 by the answer's bound: {self.bound_hits}")
        lines.append("responses: " + ", ".join(f"{op} {status}: {n}" for (op, status), n in
                                               sorted(self.history.statuses.items())))
        if self.problems:
            lines.append("PROBLEMS: " + "; ".join(self.problems))
        for pid in self.verdict.lost[:5]:
            lines.append(f"lost {pid}: " + " | ".join(self.history.trail(pid)))
        for pid in self.verdict.maybe_acked[:5]:
            lines.append(f"maybe acked {pid}: " + " | ".join(self.history.trail(pid)))
        return "\n".join(lines)


async def run_failovers(fleet: Fleet, store: Replicated, config: FailoverConfig, project: str = "ha") -> FailoverResult:
    key = f"ha-{uuid.uuid4().hex}"
    server = fleet.serve(store.url, f"{project}:{key}", BROKER_REPLICA_ACKS=str(config.replica_acks))
    history = History()
    problems: list[str] = []
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        created = await http.post("/v1/queue/create", json={"name": "work", "max_retries": 1000})
        assert created.status_code == 200, created.text

        async def serving() -> bool:
            probe = await http.get("/v1/queue/stats/work")
            return probe.status_code == 200

        probes: list[tuple[float, bool]] = []

        async def probe_loop() -> None:
            while True:
                try:
                    ok = await serving()
                except httpx.HTTPError:
                    ok = False
                probes.append((time.monotonic(), ok))
                await asyncio.sleep(0.05)

        workload = Workload(server.url, key, "work", history, publishers=config.publishers,
                            consumers=config.consumers, visibility=config.visibility, seed=config.seed, run="ha")
        started = time.monotonic()
        timings: list[dict[str, float]] = []
        workload.start()
        prober = asyncio.create_task(probe_loop())
        try:
            for _ in range(config.failovers):
                await asyncio.sleep(config.calm_seconds)
                began = time.monotonic()
                timing = await asyncio.to_thread(store.failover)
                try:
                    await eventually(serving, 30, interval=0.05, ignoring=(httpx.HTTPError,))
                except AssertionError:
                    problems.append("not serving 30 s after a failover")
                # From the kill to the first successful read after the first failed one.
                after = [(t, ok) for t, ok in probes if t >= began]
                first_failure = next((i for i, (_, ok) in enumerate(after) if not ok), None)
                back = next((t for t, ok in after[first_failure:] if ok), None) if first_failure is not None else began
                timing["ready_s"] = round((back or time.monotonic()) - began, 2)
                timings.append(timing)
            await asyncio.sleep(config.calm_seconds)
            await workload.stop_publishing()
            final = await workload.drain(config.drain_stall)
        finally:
            prober.cancel()
            await workload.stop()
    seconds = time.monotonic() - started
    if final is None or final["available"] or final["in_flight"] or final["delayed"]:
        problems.append(f"the queue was not drained: {final}")
    if server.starts != 1 or server.proc is None or server.proc.poll() is not None:
        problems.append("the API process was restarted or died")
    if "STORE LOST" in server.stderr():
        problems.append("the API process reported the store as lost (a false positive)")
    if history.hangs or history.server_errors:
        lines = server.stderr().splitlines()
        # The errors with their tracebacks first (a 500's cause), then the last lines.
        errors = [i for i, line in enumerate(lines) if " ERROR " in line or line.startswith("Traceback")]
        shown = [line for i in errors[:5] for line in lines[i:i + 30]]
        problems.append("API log (errors): " + " | ".join(shown))
        problems.append("API log (last lines): " + " | ".join(lines[-40:]))
    bound_hits = server.stderr().count("was not answered within its bound")
    return FailoverResult(config, history, check(history), timings, final, problems, seconds, bound_hits)
