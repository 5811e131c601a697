"""The scenarios, in the order one run measures them. Every phase starts the processes it needs (or
reuses the ones of its section) and records its figures in one JSON-able dict; ``bench.report`` turns
that dict into the table, the ratios and the chart."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import machine, pyspy
from bench.load import Wrk, WrkResult, run_wrk
from bench.peers import bullmq_peer, rabbitmq
from bench.procs import BenchError, HttpServer, RedisServer, api_env, http_server, redis_server
from bench.redis_side import ScriptCalls, fill, pipelined, settled_memory

PROJECT = "bench"
API_KEY = "bench-key-0123456789abcdef"
API_FACTORY = "broker.app:app_from_env"
NOOP_FACTORY = "bench.noop_app:create"
#: A typical small event: compact JSON, 139 bytes.
PAYLOAD = {
    "event": "order.created", "order_id": "ord_7Hq2xZ81", "customer_id": "cus_4711",
    "amount_cents": 1299, "currency": "EUR", "items": [{"sku": "SKU-1234", "qty": 2}], "express": False,
}


def payload_text() -> str:
    return json.dumps(PAYLOAD, separators=(",", ":"))


@dataclass(frozen=True)
class Config:
    quick: bool = False
    seconds: int = 10
    connections: int = 64  # single publish, the no-op ceiling, the work loop
    batch_connections: int = 16  # publish_batch; BullMQ addBulk calls in flight
    consume_connections: int = 32  # consume 100 + ack_batch
    e2e_producers: int = 16
    e2e_consumers: int = 32
    add_inflight: int = 50  # BullMQ add
    worker_concurrency: int = 50  # BullMQ Worker
    wrk_threads: int = 1
    workers: int = 1  # uvicorn workers, for the API and the ceiling alike
    backlog: int = 1_000_000
    memory_messages: int = 50_000  # quick mode (the full run measures on the backlog itself)
    growth: bool = True
    peers: str = "auto"  # auto: when installed (quick) / install them (full); on; off
    profile: bool = False
    quiet_wait: int = 0  # seconds to wait, before each measurement, for other processes to go quiet


Log = Callable[[str], None]
#: Other processes may use this many cores before a measurement starts (with ``quiet_wait``).
QUIET_CORES = 0.3


class Api:
    """The API under test, through its HTTP contract."""

    def __init__(self, server: HttpServer):
        self.server = server
        self.url = server.url
        self.client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)

    def create_queue(self, name: str, priority: bool = False) -> None:
        answer = self.client.post("/v1/queue/create", json={"name": name, "enable_priority": priority})
        if answer.status_code != 200:
            raise BenchError(f"creating queue {name}: {answer.status_code} {answer.text}")

    def stats(self, name: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.client.get(f"/v1/queue/stats/{name}").json()
        return answer


@contextlib.contextmanager
def api_stack(config: Config, name: str) -> Iterator[tuple[RedisServer, Api]]:
    with redis_server(name) as redis, http_server(API_FACTORY, api_env(redis.url, PROJECT, API_KEY),
                                                   config.workers) as server:
        api = Api(server)
        try:
            yield redis, api
        finally:
            api.client.close()


class Suite:
    def __init__(self, config: Config, log: Log):
        self.config = config
        self.log = log
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-run-"))
        self.payload_file = self.tmp / "payload.json"
        self.payload_file.write_text(payload_text())
        self.payload = payload_text().encode()
        self.cpu_count = os.cpu_count() or 1
        self.results: dict[str, Any] = {
            "config": asdict(config), "machine": machine.facts(), "payload_bytes": len(self.payload),
            "ceilings": {}, "ours": {}, "growth": {}, "memory": {}, "peers": {}, "cpu": {}, "notes": [],
        }
        self.results["machine"]["fsync_200_bytes"] = machine.fsync_latency()

    # --- helpers ----------------------------------------------------------------------------------
    def args(self, queue: str, **extra: Any) -> dict[str, Any]:
        return {"key": API_KEY, "queue": queue, "payload": self.payload_file, **extra}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Record how busy the machine was during a measurement, and how much of it was not the suite.
        With ``quiet_wait``, first wait (that long at most) for other processes to leave the cores alone."""
        self.wait_quiet(name)
        meter = machine.CpuMeter()
        yield
        usage = meter.stop()
        self.results["cpu"][name] = usage
        if usage.get("other_cores", 0) > 0.25:
            self.note(f"{name}: other processes used {usage['other_cores']:.2f} of {self.cpu_count} cores meanwhile")

    def wait_quiet(self, name: str) -> None:
        limit = self.config.quiet_wait
        if limit <= 0:
            return
        deadline = time.monotonic() + limit
        while True:
            meter = machine.CpuMeter()
            time.sleep(1.0)
            others = meter.stop().get("other_cores", 0.0)
            if others <= QUIET_CORES:
                return
            if time.monotonic() >= deadline:
                self.note(f"{name}: started after waiting {limit} s for a quiet machine (others at {others:.2f} cores)")
                return

    def wrk(self, url: str, script: str, args: dict[str, Any], connections: int, phase: str) -> WrkResult:
        with self.phase(phase):
            result = run_wrk(url, script, args, connections, self.config.seconds, self.config.wrk_threads)
        if result.failures():
            self.note(f"{script} on {args.get('queue')}: {result.failures()} failed requests "
                      f"(status {result.bad}, socket {result.errors})")
        return result

    def note(self, text: str) -> None:
        self.results["notes"].append(text)
        self.log("  note: " + text)

    # --- sections -----------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        try:
            self.main_section()
            if self.config.growth:
                self.growth_section()
            self.peers_section()
            if self.config.profile:
                self.profile_section()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.results["elapsed_seconds"] = round(time.monotonic() - started, 1)
        return self.results

    def main_section(self) -> None:
        c, ours, ceilings = self.config, self.results["ours"], self.results["ceilings"]
        with api_stack(c, "main") as (redis, api), http_server(NOOP_FACTORY, {}, c.workers,
                                                               ready_path="/v1/queue/publish") as noop:
            for name in ("publish", "batch", "e2e", "raw", "memory"):
                api.create_queue(name)
            api.create_queue("memory-prio", priority=True)

            self.log(f"no-op ceiling: {c.connections} connections, {c.seconds} s")
            ceilings["noop"] = self.wrk(noop.url, "publish.lua", self.args("noop"), c.connections, "noop").summary()

            self.log("publish (single message)")
            single = self.wrk(api.url, "publish.lua", self.args("publish"), c.connections, "publish")
            ours["publish"] = single.summary()

            half = max(1.0, single.request_rate / 2)
            self.log(f"publish paced at half its max: {half:.0f} req/s")
            with redis.client() as client:
                client.config_set("latency-monitor-threshold", 1)
                client.execute_command("LATENCY", "RESET")
            paced = self.wrk(api.url, "publish_paced.lua",
                             self.args("publish", rate=f"{half:.1f}", threads=c.wrk_threads), c.connections,
                             "publish_half")
            ours["publish_half"] = {**paced.summary(), "target_rate": round(half, 1),
                                    "redis_latency_events": self.latency_events(redis)}
            with redis.client() as client:
                client.config_set("latency-monitor-threshold", 0)

            self.log(f"publish_batch of 100: {c.batch_connections} connections")
            batch = self.wrk(api.url, "publish_batch.lua", self.args("batch", batch=100), c.batch_connections,
                             "publish_batch")
            ours["publish_batch"] = {**batch.summary(), "msg_rate": round((batch.requests - batch.bad) * 100
                                                                           / batch.seconds, 1)}

            self.log(f"consume 100 + ack_batch: {c.consume_connections} connections")
            ours["consume_ack"] = self.wrk(api.url, "consume_ack.lua", self.args("batch", max=100),
                                           c.consume_connections, "consume_ack").summary()

            self.log(f"work loop, long-poll consume 1 + ack 1: {c.connections} connections")
            ours["work_loop"] = self.wrk(api.url, "consume_ack.lua", self.args("publish", max=1, single=1, wait=1),
                                         c.connections, "work_loop").summary()

            self.log(f"end to end: {c.e2e_producers} publish_batch + {c.e2e_consumers} consume/ack connections")
            with self.phase("end_to_end"):
                producers = Wrk(api.url, "publish_batch.lua", self.args("e2e", batch=100), c.e2e_producers,
                                c.seconds, c.wrk_threads)
                consumers = Wrk(api.url, "consume_ack.lua", self.args("e2e", max=100, wait=1), c.e2e_consumers,
                                c.seconds, c.wrk_threads)
                produced, consumed = producers.result(), consumers.result()
            ours["end_to_end"] = {
                "msg_rate": round(consumed.msgs / consumed.seconds, 1),
                "published_rate": round((produced.requests - produced.bad) * 100 / produced.seconds, 1),
                "producers": produced.summary(), "consumers": consumed.summary(),
                "backlog_after": api.stats("e2e").get("available"),
            }

            with self.phase("redis_ceilings"):
                self.redis_ceilings(redis)
            if not c.growth:
                for queue, priority in (("memory", False), ("memory-prio", True)):
                    self.results["memory"]["prio_on" if priority else "prio_off"] = self.memory(
                        redis, queue, c.memory_messages, priority)

    @staticmethod
    def latency_events(redis: RedisServer) -> dict[str, Any]:
        """Redis's latency monitor (events over 1 ms) since the last reset: the worst per event type, and
        for the fsync of every write (appendfsync always) the history of per-second maxima."""
        with redis.client() as client:
            latest = client.execute_command("LATENCY", "LATEST")
            history = client.execute_command("LATENCY", "HISTORY", "aof-fsync-always")
        events = {}
        for row in latest:
            name = row[0].decode() if isinstance(row[0], bytes) else str(row[0])
            events[name] = {"max_ms": int(row[3])}
        maxima = sorted(int(r[1]) for r in history)
        if maxima:
            events.setdefault("aof-fsync-always", {})["per_second_max_ms_median"] = maxima[len(maxima) // 2]
            events["aof-fsync-always"]["seconds_with_event"] = len(maxima)
        return events

    def redis_ceilings(self, redis: RedisServer) -> None:
        """Our scripts over pipelined connections: what Redis alone sustains, and its CPU time per call."""
        c = self.config
        seconds = min(c.seconds, 3)
        calls = ScriptCalls(PROJECT)
        out: dict[str, Any] = {}
        with redis.client() as client:
            calls.load(client)
            self.log(f"Redis ceiling: our scripts by pipelined EVALSHA, {seconds} s each")
            one = calls.publish("raw", [self.payload])
            run, _ = pipelined(client, lambda: one, c.connections, seconds)
            out["publish"] = {"calls_per_second": round(run.calls_per_second, 1), "msg_rate":
                              round(run.calls_per_second, 1), "redis_usec_per_call": round(run.redis_usec_per_call, 2),
                              "depth": c.connections}
            hundred = calls.publish("raw", [self.payload] * 100)
            run, _ = pipelined(client, lambda: hundred, c.batch_connections, seconds)
            out["publish_batch"] = {"calls_per_second": round(run.calls_per_second, 1),
                                    "msg_rate": round(run.calls_per_second * 100, 1),
                                    "redis_usec_per_call": round(run.redis_usec_per_call, 2),
                                    "depth": c.batch_connections}
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
        self.results["ceilings"]["redis"] = out

    def memory(self, redis: RedisServer, queue: str, count: int, priority: bool) -> dict[str, Any]:
        """INFO used_memory before and after ``count`` messages, per message, and beyond the payload."""
        with redis.client() as client:
            calls = ScriptCalls(PROJECT)
            calls.load(client)
            before = settled_memory(client)
            rate = fill(client, calls, queue, self.payload, count, priorities=priority)
            after = settled_memory(client)
        per_message = (after - before) / count
        return {"messages": count, "bytes_per_message": round(per_message, 1), "payload_bytes": len(self.payload),
                "overhead_bytes": round(per_message - len(self.payload), 1), "fill_rate": round(rate, 1)}

    def growth_section(self) -> None:
        """Publish, consume and ack on a queue holding the backlog vs an empty one, priorities off and on."""
        c = self.config
        consume_rate = float(self.results["ours"].get("consume_ack", {}).get("msg_rate", 40_000))
        for priority in (False, True):
            kind = "prio_on" if priority else "prio_off"
            self.results["growth"][kind] = {}
            for size in ("empty", "backlog"):
                with api_stack(c, f"growth-{kind}-{size}") as (redis, api):
                    queue = f"growth-{size}"
                    api.create_queue(queue, priority=priority)
                    calls = ScriptCalls(PROJECT)
                    with redis.client() as client:
                        calls.load(client)
                    case: dict[str, Any] = {}
                    if size == "backlog":
                        self.log(f"growth ({kind}): loading {c.backlog:,} messages")
                        self.results["memory"][kind] = self.memory(redis, queue, c.backlog, priority)
                    case["scripts"] = self.script_costs(redis, calls, queue, priority)
                    self.log(f"growth ({kind}, {size}): publish")
                    case["publish"] = self.wrk(api.url, "publish.lua", self.args(queue, priorities=int(priority)),
                                               c.connections, f"growth.{kind}.{size}.publish").summary()
                    need = int(consume_rate * 2.5 * c.seconds)
                    with redis.client() as client:
                        fill(client, calls, queue, self.payload, need, priorities=priority)
                    case["queue_before_consume"] = api.stats(queue).get("available")
                    leases = self.tmp / f"leases-{kind}-{size}"
                    self.log(f"growth ({kind}, {size}): consume 100 (no ack), then ack_batch of those leases")
                    consume = self.wrk(api.url, "consume.lua", self.args(queue, max=100, leases=leases),
                                       c.consume_connections, f"growth.{kind}.{size}.consume")
                    case["consume"] = consume.summary()
                    case["ack"] = self.wrk(api.url, "ack_batch.lua",
                                           self.args(queue, leases=leases, files=c.wrk_threads,
                                                     threads=c.wrk_threads, batch=100),
                                           c.consume_connections, f"growth.{kind}.{size}.ack").summary()
                    case["queue_after"] = api.stats(queue).get("available")
                    self.results["growth"][kind][size] = case

    def script_costs(self, redis: RedisServer, calls: ScriptCalls, queue: str, priority: bool,
                     count: int = 20_000) -> dict[str, Any]:
        """Redis CPU per script call (INFO commandstats): publish 1, claim 100, ack 100 of ``count`` messages
        that pass through the queue on top of whatever it already holds."""
        import random

        rng = random.Random(11)
        with redis.client() as client:
            publishes = [calls.publish(queue, [self.payload], [rng.randint(0, 9)] if priority else None)
                         for _ in range(count)]
            publish, _ = pipelined(client, publishes, self.config.connections)
            claims = [calls.claim(queue, 100, 3_600_000)] * (count // 100)
            claim, replies = pipelined(client, claims, self.config.consume_connections)
            leases = [(m.message_id, m.receipt or "") for r in replies for m in calls.parse_claim(queue, r)]
            acks = [calls.ack(queue, leases[i:i + 100]) for i in range(0, len(leases), 100)]
            ack, _ = pipelined(client, acks, self.config.consume_connections)
        return {"publish_usec": round(publish.redis_usec_per_call, 2),
                "claim100_usec": round(claim.redis_usec_per_call, 2),
                "ack100_usec": round(ack.redis_usec_per_call, 2), "messages": count}

    def peers_section(self) -> None:
        c = self.config
        if c.peers == "off":
            return
        install = c.peers == "on" or (c.peers == "auto" and not c.quick)
        if not bullmq_peer.installed() and install:
            self.log("installing BullMQ (npm ci into bench/.cache/bullmq)")
            try:
                bullmq_peer.install()
            except BenchError as exc:
                self.note(f"BullMQ skipped: {exc}")
        if bullmq_peer.installed():
            self.log(f"BullMQ {bullmq_peer.version()}: addBulk, add, Worker, both at once ({c.seconds} s each)")
            with redis_server("bullmq") as redis, self.phase("bullmq"):
                self.results["peers"]["bullmq"] = bullmq_peer.run(
                    redis, c.seconds, payload_text(), c.batch_connections, c.add_inflight, c.worker_concurrency)
                self.results["peers"]["bullmq"]["node"] = bullmq_peer.node_version()
        else:
            self.note("BullMQ not measured (not installed; the full run installs it)")
        reason = rabbitmq.available()
        if reason is None:
            self.log("RabbitMQ: publish with confirms, then end to end")
            with self.phase("rabbitmq (the broker's own CPU counts as other)"):
                self.results["peers"]["rabbitmq"] = rabbitmq.run(c.seconds, payload_text(), inflight=c.connections)
            self.results["peers"]["rabbitmq"]["version"] = rabbitmq.server_version()
        else:
            self.note(f"RabbitMQ not measured: {reason}")

    def profile_section(self) -> None:
        """py-spy on the worker during single publish: Python frames (not pausing the worker), then
        Python and C frames (pausing it at every sample: shares only, its throughput is not comparable)."""
        c = self.config
        out_dir = Path(self.results.get("results_dir") or self.tmp)
        profiles: dict[str, Any] = {}
        with api_stack(c, "profile") as (_redis, api):
            api.create_queue("profile")
            for native in (False, True):
                label = "native" if native else "python"
                self.log(f"profile ({label} frames): py-spy on the worker during single publish")
                load = Wrk(api.url, "publish.lua", self.args("profile"), c.connections, c.seconds + 2, c.wrk_threads)
                time.sleep(1)
                path = pyspy.record(api.server.pid, c.seconds, out_dir / f"profile-publish-{label}.collapsed",
                                    native=native)
                result = load.result()
                profiles[label] = {"file": path.name, "request_rate_while_profiled": round(result.request_rate, 1),
                                   "categories": pyspy.summarize(path), "entry_points": pyspy.inclusive(path),
                                   "syscalls": pyspy.syscalls(path)}
        self.results["profile"] = profiles
