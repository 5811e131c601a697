"""The fault-injection run: a real ``broker serve`` on a durable redis-server of its own, a load of publishers
and consumers recording their history (loadgen.py), and faults injected in turn while the load runs:

- ``redis_kill``: SIGKILL the redis-server, restart it on the same append-only file;
- ``api_kill``: SIGKILL the API process, start it again;
- ``consumer_kill``: a consumer process leases messages and is SIGKILLed holding them;
- ``redis_stop``: SIGSTOP the redis-server for 5 s, then SIGCONT;
- ``redis_restart_longpoll``: restart the redis-server (SIGKILL) while long polls wait on an idle queue;
  every one of them must return 200 on time, and a message published after the restart must wake one.

The API process is never restarted after a Redis fault: it must recover by itself. At the end the
publishers stop, the queue is drained, and the checker runs over the whole history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from loadgen import Delivery, History, Verdict, Workload, check
from support import eventually
from support.fleet import ApiServer, Fleet, RedisNode

KINDS = ("redis_kill", "api_kill", "consumer_kill", "redis_stop", "redis_restart_longpoll")
HERE = Path(__file__).resolve().parent


@dataclass
class SuiteConfig:
    min_cycles: int = 5
    min_ops: int = 0
    kinds: tuple[str, ...] = KINDS
    calm_seconds: float = 2.0
    publishers: int = 3
    consumers: int = 3
    visibility: float = 3.0
    freeze_seconds: float = 5.0
    long_polls: int = 6
    long_poll_wait: float = 10.0
    drain_stall: float = 30.0  # the drain gives up when the backlog has not shrunk for this long
    seed: int = 1


@dataclass
class FaultRecord:
    kind: str
    at: float  # seconds since the load started
    outage_s: float  # how long the fault lasted
    recovery_s: float  # from the end of the fault until the service answered /readyz 200 again
    ops_before: int
    notes: str = ""


@dataclass
class SuiteResult:
    config: SuiteConfig
    faults: list[FaultRecord]
    history: History
    verdict: Verdict
    final_stats: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def table(self) -> str:
        v = self.verdict
        kinds: dict[str, list[FaultRecord]] = {}
        for f in self.faults:
            kinds.setdefault(f.kind, []).append(f)
        lines = [f"fault run: {len(self.faults)} faults, {self.history.ops} operations in {self.seconds:.0f} s"]
        lines.append(f"{'fault':<24}{'count':>6}{'outage s (max)':>16}{'recovery s (max)':>18}")
        for kind, records in kinds.items():
            lines.append(f"{kind:<24}{len(records):>6}{max(r.outage_s for r in records):>16.2f}"
                         f"{max(r.recovery_s for r in records):>18.2f}")
        lines.append(v.summary())
        statuses = sorted(self.history.statuses.items())
        lines.append("responses: " + ", ".join(f"{op} {status}: {n}" for (op, status), n in statuses))
        if self.history.transport:
            lines.append("transport errors: " + ", ".join(f"{op} {kind}: {n}"
                                                          for (op, kind), n in sorted(self.history.transport.items())))
        lines.append("max latency s (consume without its wait): " + ", ".join(
            f"{op} {s:.2f}" for op, s in sorted(self.history.max_latency.items())))
        if self.problems:
            lines.append("PROBLEMS: " + "; ".join(self.problems))
        return "\n".join(lines)

    def figures(self) -> dict[str, Any]:
        v = self.verdict
        return {
            "faults": len(self.faults),
            "faults_by_kind": {k: sum(1 for f in self.faults if f.kind == k) for k in self.config.kinds},
            "operations": self.history.ops,
            "seconds": round(self.seconds, 1),
            "attempted": v.attempted,
            "acknowledged": v.acknowledged,
            "indeterminate": v.indeterminate,
            "deliveries": v.deliveries,
            "lost": len(v.lost),
            "maybe_acked": len(v.maybe_acked),
            "unexpected": len(v.unexpected),
            "corrupted": len(v.corrupted),
            "duplicates": v.duplicates,
            "redelivered": v.redelivered,
            "orphaned_leases": v.orphaned_leases,
            "max_recovery_s": round(max((f.recovery_s for f in self.faults), default=0), 2),
            "problems": self.problems,
        }


class Run:
    """The state of one fault run."""

    def __init__(self, fleet: Fleet, config: SuiteConfig):
        self.fleet = fleet
        self.config = config
        self.key = f"faults-{uuid.uuid4().hex}"
        self.project = "faults"
        self.node: RedisNode = fleet.redis(name="store")
        self.server: ApiServer = fleet.serve(self.node.url, f"{self.project}:{self.key}")
        self.history = History()
        self.orphans: list[Delivery] = []
        self.problems: list[str] = []
        self.faults: list[FaultRecord] = []
        self.workload: Workload | None = None
        self.started = time.monotonic()
        self.victims = 0

    def http(self, timeout: float = 30) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.server.url, headers={"Authorization": f"Bearer {self.key}"},
                                 timeout=timeout)

    async def setup(self) -> None:
        async with self.http() as http:
            for name in ("work", "idle"):
                r = await http.post("/v1/queue/create", json={"name": name, "max_retries": 1000})
                assert r.status_code == 200, r.text

    async def wait_ready(self, timeout: float = 30) -> float:
        """Seconds until /readyz answers 200."""
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=self.server.url, timeout=5) as http:

            async def ready() -> bool:
                return (await http.get("/readyz")).status_code == 200

            try:
                await eventually(ready, timeout, interval=0.05, ignoring=(httpx.HTTPError,))
            except AssertionError:
                self.problems.append(f"not ready {timeout} s after a fault")
                return timeout
        return time.monotonic() - started

    # --- faults -----------------------------------------------------------------------------------
    async def redis_kill(self) -> tuple[float, str]:
        began = time.monotonic()
        await asyncio.to_thread(self.node.kill, signal.SIGKILL)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(self.node.start)
        return time.monotonic() - began, ""

    async def api_kill(self) -> tuple[float, str]:
        began = time.monotonic()
        await asyncio.to_thread(self.server.kill, signal.SIGKILL)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(self.server.start)
        return time.monotonic() - began, ""

    async def consumer_kill(self) -> tuple[float, str]:
        self.victims += 1
        out = self.fleet.workdir / f"victim-{self.victims}.jsonl"
        out.touch()
        began = time.monotonic()
        proc = self.fleet.spawn(sys.executable, str(HERE / "victim.py"), self.server.url, self.key, "work", str(out),
                                str(self.config.visibility), log=self.fleet.workdir / f"victim-{self.victims}.log")
        with contextlib.suppress(AssertionError):  # leasing nothing is recorded as a problem below
            await eventually(lambda: out.read_text().strip() or proc.poll() is not None, 30, interval=0.05)
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
        lines = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
        if not lines:
            self.problems.append(f"victim {self.victims} leased nothing before it was killed")
        for line in lines:
            self.orphans.append(Delivery(line["pid"], line["message_id"], line["attempts"], f"victim-{self.victims}",
                                         time.monotonic()))
        return time.monotonic() - began, f"{len(lines)} leases orphaned"

    async def redis_stop(self) -> tuple[float, str]:
        began = time.monotonic()
        self.node.freeze()
        await asyncio.sleep(self.config.freeze_seconds)
        self.node.thaw()
        return time.monotonic() - began, ""

    async def redis_restart_longpoll(self) -> tuple[float, str]:
        wait = self.config.long_poll_wait
        body = {"queue": "idle", "wait_seconds": wait, "visibility_timeout": 30}
        async with self.http(timeout=wait + 30) as http:

            async def poll() -> tuple[int | str, list[Any], float]:
                started = time.monotonic()
                try:
                    r = await http.post("/v1/queue/consume", json=body)
                except httpx.HTTPError as exc:
                    return type(exc).__name__, [], time.monotonic() - started
                messages = r.json().get("messages", []) if r.status_code == 200 else []
                return r.status_code, messages, time.monotonic() - started

            polls = [asyncio.create_task(poll()) for _ in range(self.config.long_polls)]
            await asyncio.sleep(1.0)
            began = time.monotonic()
            await asyncio.to_thread(self.node.kill, signal.SIGKILL)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(self.node.start)
            outage = time.monotonic() - began
            await self.wait_ready()
            published = await http.post("/v1/queue/publish", json={"queue": "idle", "payload": {"id": "wake-up"}})
            results = await asyncio.gather(*polls)
        statuses = [status for status, _, _ in results]
        woken = [m for _, messages, _ in results for m in messages]
        slowest = max(elapsed for _, _, elapsed in results)
        notes = f"long polls: {statuses}, slowest {slowest:.1f} s, woken by the publish: {len(woken)}"
        if any(status != 200 for status in statuses):
            self.problems.append(f"a long poll across a Redis restart did not answer 200: {statuses}")
        if slowest > wait + 5:
            self.problems.append(f"a long poll across a Redis restart took {slowest:.1f} s (wait {wait} s)")
        if published.status_code == 200 and len(woken) != 1:
            self.problems.append(f"a publish after the restart woke {len(woken)} long polls, not 1")
        async with self.http() as http:
            for m in woken:
                await http.post("/v1/queue/ack", json={"queue": "idle", "message_id": m["message_id"]})
            if published.status_code != 200:
                await http.post("/v1/queue/purge/idle")
        return outage, notes

    # --- the run ----------------------------------------------------------------------------------
    async def inject(self, kind: str) -> None:
        fault: Callable[[], Awaitable[tuple[float, str]]] = getattr(self, kind)
        at = time.monotonic() - self.started
        ops_before = self.history.ops
        server_starts = self.server.starts
        outage, notes = await fault()
        recovery = await self.wait_ready()
        if kind != "api_kill" and self.server.starts != server_starts:
            self.problems.append(f"{kind}: the API process was restarted")
        if self.server.proc is not None and self.server.proc.poll() is not None:
            self.problems.append(f"{kind}: the API process died ({self.server.proc.returncode})")
        self.faults.append(FaultRecord(kind, round(at, 1), round(outage, 2), round(recovery, 2), ops_before, notes))

    async def run(self) -> SuiteResult:
        config = self.config
        await self.setup()
        workload = self.workload = Workload(
            self.server.url, self.key, "work", self.history, publishers=config.publishers,
            consumers=config.consumers, visibility=config.visibility, seed=config.seed, run="m",
        )
        self.started = time.monotonic()
        workload.start()
        try:
            cycle = 0
            while cycle < config.min_cycles or self.history.ops < config.min_ops:
                await asyncio.sleep(config.calm_seconds)
                await self.inject(config.kinds[cycle % len(config.kinds)])
                cycle += 1
            await asyncio.sleep(config.calm_seconds)
            await workload.stop_publishing()
            final = await workload.drain(config.drain_stall)
        finally:
            await workload.stop()
        seconds = time.monotonic() - self.started
        if final is None or final["available"] or final["in_flight"] or final["delayed"] or final["dlq"]:
            self.problems.append(f"the queue was not drained: {final}")
        if "STORE LOST" in self.server.stderr():
            self.problems.append("the API process reported the store as lost (a false positive)")
        verdict = check(self.history, self.orphans)
        return SuiteResult(config, self.faults, self.history, verdict, final, self.problems, seconds)


async def run_suite(fleet: Fleet, config: SuiteConfig) -> SuiteResult:
    return await Run(fleet, config).run()
