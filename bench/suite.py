"""The scenarios, in the order one run measures them. Every section starts the processes it needs and
records its figures in one JSON-able dict; ``bench.report`` turns that dict into the tables, the ratios
and the chart.

The machine is small and may be shared: every measurement records how many cores other processes used
meanwhile, waits (up to ``quiet_wait`` seconds) for them to go quiet first, and is repeated (up to
``retries`` times) when they did not, keeping the least disturbed attempt."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx

from bench import backlog, cli_publish, machine, observability, push, pyspy, work_loop
from bench.load import Wrk, WrkResult, run_wrk
from bench.peers import bullmq_peer, rabbitmq
from bench.procs import BenchError, HttpServer, RedisServer, api_env, http_server, redis_server

T = TypeVar("T")
PROJECT = "bench"
API_KEY = "bench-key-0123456789abcdef"
API_FACTORY = "broker.http.app:app_from_env"
NOOP_FACTORY = "bench.noop_app:create"
#: A typical small event; 166 bytes as compact JSON.
PAYLOAD = {
    "event": "order.created", "order_id": "ord_7Hq2xZ81", "customer_id": "cus_4711",
    "amount_cents": 1299, "currency": "EUR", "items": [{"sku": "SKU-1234", "qty": 2}], "express": False,
}
#: Other processes may use this many cores before a measurement starts (with ``quiet_wait``) ...
QUIET_CORES = 0.3
#: ... and during it, before it counts as disturbed (noted, and measured again with ``retries``).
DISTURBED_CORES = 0.25
#: The RabbitMQ server's processes: the broker under test, not a disturbance.
RABBITMQ_PROCESSES = ("beam.smp", "erl_child_setup", "inet_gethost", "epmd")


def ratio(a: Any, b: Any) -> float | None:
    return None if a is None or not b else float(a) / float(b)


def best(repeats: list[dict[str, Any]], score: Callable[[dict[str, Any]], float | None],
         higher: bool = True) -> dict[str, Any]:
    """The repeat with the best score (the first when none has one)."""
    scored = [(value, r) for r in repeats if (value := score(r)) is not None]
    if not scored:
        return repeats[0]
    return (max if higher else min)(scored, key=lambda pair: pair[0])[1]


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
    memory_messages: int = 50_000  # without the growth section (the full run measures on the backlog)
    growth: bool = True
    peers: str = "auto"  # auto: install them in the full run, run them if installed in the quick one; on; off
    profile: bool = False
    quiet_wait: int = 0
    retries: int = 0
    observability: bool = True  # counters, request log and scrape costs (bench/observability.py)
    cli_publish: bool = True  # broker publish --file (bench/cli_publish.py)
    work_loop: bool = True  # the work loop against BullMQ's Worker, interleaved (bench/work_loop.py)
    only_work_loop: bool = False  # that section alone
    repeats: int = 2  # every target figure, measured this often, interleaved; the best repeat is kept
    only_targets: bool = False  # only what the table of the targets needs
    push: bool = True  # push delivery against the local HTTPS receiver (bench/push.py)
    ab_rounds: int = 4  # interleaved rounds of the with/without comparisons of single publish
    scrape_queues: int = 10_000
    scrape_with_messages: int = 300
    scrape_runs: int = 7
    cli_lines: int = 1_000_000


Log = Callable[[str], None]


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
    """A private redis-server and the API on it (one project key, background jobs off when possible)."""
    with redis_server(name) as redis, http_server(API_FACTORY, api_env(redis.url, PROJECT, API_KEY),
                                                   config.workers) as server:
        api = Api(server)
        try:
            yield redis, api
        finally:
            api.client.close()



#: INFO fields read around a publish run: Redis's read events (each wake-up that read a connection) and its
#: CPU; per request they show how many calls one Redis wake-up (and one AOF fsync) carries.
REDIS_COUNTERS = ("total_reads_processed", "used_cpu_user", "used_cpu_sys")


def redis_counters(redis: RedisServer) -> dict[str, float]:
    with redis.client() as client:
        info = cast(dict[str, Any], client.info("all"))
    return {name: float(info.get(name, 0)) for name in REDIS_COUNTERS}


def per_request(before: dict[str, float], after: dict[str, float], requests: Any) -> dict[str, float | None]:
    """Redis's work per HTTP request between two ``redis_counters`` readings (the readings' own INFO calls
    included: negligible against the requests of a run)."""
    if not requests:
        return {"reads_per_request": None, "requests_per_read": None, "cpu_us_per_request": None}
    delta = {name: after[name] - before[name] for name in REDIS_COUNTERS}
    reads = delta["total_reads_processed"]
    return {
        "reads_per_request": round(reads / requests, 3),
        "requests_per_read": round(requests / reads, 1) if reads else None,
        "cpu_us_per_request": round((delta["used_cpu_user"] + delta["used_cpu_sys"]) * 1e6 / requests, 2),
    }


class Suite:
    def __init__(self, config: Config, log: Log):
        self.config = config
        self.log = log
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-run-"))
        self.payload_file = self.tmp / "payload.json"
        self.payload_file.write_text(payload_text())
        self.payload = payload_text().encode()
        self.cpu_count = os.cpu_count() or 1
        self.results_dir = self.tmp
        self.bullmq = False  # installed, and to be measured (ensure_bullmq)
        self.results: dict[str, Any] = {
            "config": asdict(config), "machine": machine.facts(), "payload_bytes": len(self.payload),
            "ceilings": {}, "ours": {}, "growth": {}, "memory": {}, "peers": {}, "cpu": {}, "notes": [],
            "repeats": {},
        }
        self.results["machine"]["fsync_200_bytes"] = machine.fsync_latency()

    # --- helpers ----------------------------------------------------------------------------------
    def args(self, queue: str, **extra: Any) -> dict[str, Any]:
        return {"key": API_KEY, "queue": queue, "payload": self.payload_file, **extra}

    def note(self, text: str) -> None:
        self.results["notes"].append(text)
        self.log("  note: " + text)

    def wait_quiet(self, name: str, also: tuple[str, ...] = ()) -> None:
        limit = self.config.quiet_wait
        if limit <= 0:
            return
        deadline = time.monotonic() + limit
        while True:
            meter = machine.CpuMeter(also)
            time.sleep(1.0)
            others = meter.stop().get("other_cores", 0.0)
            if others <= QUIET_CORES:
                return
            if time.monotonic() >= deadline:
                self.log(f"  {name}: no quiet moment in {limit} s (others at {others:.2f} cores); measuring anyway")
                return

    def measure(self, name: str, action: Callable[[], T], also: tuple[str, ...] = (),
                settle: Callable[[], None] | None = None) -> T:
        """Run ``action`` as one measurement; again when other processes disturbed it, keeping the least
        disturbed attempt. Records the CPU use of the kept attempt under ``cpu.<name>``. Processes named in
        ``also`` (a peer's server) count as part of the measurement, not as disturbance; ``settle`` runs
        before each attempt (waiting for Redis's background work to end)."""
        attempts = 1 + self.config.retries
        best: tuple[T, dict[str, float]] | None = None
        for attempt in range(attempts):
            if settle is not None:
                settle()
            self.wait_quiet(name, also)
            meter = machine.CpuMeter(also)
            value = action()
            usage = {**meter.stop(), "attempt": attempt + 1}
            if best is None or usage.get("other_cores", 0) < best[1].get("other_cores", 0):
                best = (value, usage)
            if usage.get("other_cores", 0) <= DISTURBED_CORES:
                break
            if attempt + 1 < attempts:
                self.log(f"  {name}: other processes used {usage['other_cores']:.2f} cores; measuring again")
        assert best is not None
        value, usage = best
        self.results["cpu"][name] = usage
        if usage.get("other_cores", 0) > DISTURBED_CORES:
            self.note(f"{name}: other processes used {usage['other_cores']:.2f} of {self.cpu_count} cores meanwhile")
        return value

    def wrk(self, name: str, url: str, script: str, args: dict[str, Any], connections: int,
            settle: Callable[[], None] | None = None, threads: int | None = None) -> WrkResult:
        threads = threads or self.config.wrk_threads
        result = self.measure(
            name, lambda: run_wrk(url, script, args, connections, self.config.seconds, threads), settle=settle)
        if result.failures():
            self.note(f"{name}: {result.failures()} failed requests (status {result.bad}, socket {result.errors})")
        return result

    def repeated(self, key: str, sides: Sequence[tuple[str, str, Callable[[str], dict[str, Any]]]],
                 repeats: int | None = None) -> list[dict[str, Any]]:
        """A target figure: its sides (side, measurement name, action) measured one after the other, and all of
        that ``repeats`` times (A/B/A/B: two measurements of one side are never back to back). Every repeat is
        recorded under ``repeats.<key>``; the report keeps the best one and gives the spread. The action gets
        the measurement's name (``<name>.<repeat>`` when there is more than one)."""
        count = max(1, self.config.repeats if repeats is None else repeats)
        out: list[dict[str, Any]] = []
        self.results["repeats"][key] = out
        for number in range(1, count + 1):
            if count > 1:
                self.log(f"  {key}: repeat {number}/{count}")
            out.append({side: action(name if count == 1 else f"{name}.{number}") for side, name, action in sides})
        return out

    def ensure_bullmq(self) -> bool:
        """BullMQ is installed (installing it when the run should); a note when it is not."""
        c = self.config
        if c.peers == "off":
            return False
        if not bullmq_peer.installed() and (c.peers == "on" or not c.quick):
            self.log("installing BullMQ (npm ci into bench/.cache/bullmq)")
            try:
                bullmq_peer.install()
            except BenchError as exc:
                self.note(f"BullMQ skipped: {exc}")
        if not bullmq_peer.installed():
            self.note("BullMQ not measured (not installed; the full run installs it)")
            return False
        return True

    # --- sections -----------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        c = self.config
        started = time.monotonic()
        try:
            if c.only_work_loop:
                work_loop.section(self)
                self.results["elapsed_seconds"] = round(time.monotonic() - started, 1)
                return self.results
            self.bullmq = self.ensure_bullmq()
            self.main_section()
            self.two_workers_section()
            if c.growth:
                backlog.growth_section(self)
            if c.observability and not c.only_targets:
                observability.section(self)
            if c.cli_publish and not c.only_targets:
                cli_publish.section(self)
            if not c.only_targets:
                self.peers_section()
            if c.work_loop and self.bullmq:
                work_loop.section(self)
            if c.push:
                push.section(self)
            if c.profile:
                self.profile_section()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.results["elapsed_seconds"] = round(time.monotonic() - started, 1)
        return self.results

    def publish_vs_noop(self, key: str, redis: RedisServer, api: Api, noop: HttpServer, settle: Callable[[], None],
                        threads: int, suffix: str = "") -> dict[str, Any]:
        """The no-op ceiling, then single publish, ``repeats`` times; the repeat with the best ratio. Each publish
        run also records what its Redis did per request (``redis_side``: event-loop reads, commands and CPU)."""
        c = self.config

        def noop_run(name: str) -> dict[str, Any]:
            return self.wrk(name, noop.url, "publish.lua", self.args("noop"), c.connections, threads=threads).summary()

        def publish_run(name: str) -> dict[str, Any]:
            before = redis_counters(redis)
            summary = self.wrk(name, api.url, "publish.lua", self.args("publish"), c.connections, settle,
                               threads=threads).summary()
            return {**summary, "redis_side": per_request(before, redis_counters(redis), summary.get("requests"))}

        self.log(f"{key}: no-op ceiling, then single publish; {c.connections} connections, {threads} wrk thread(s), "
                 f"{c.seconds} s each")
        repeats = self.repeated(key, [("noop", f"noop{suffix}", noop_run),
                                      ("publish", f"publish{suffix}", publish_run)])
        return best(repeats, lambda r: ratio(r["publish"]["request_rate"], r["noop"]["request_rate"]))

    def p99_split(self, redis: RedisServer, api: Api, settle: Callable[[], None], rate: float) -> None:
        """Single publish paced at ``rate`` (half its max), against the run's Redis with ``appendfsync always`` (the
        total p99) and with ``appendfsync no`` (AOF on, no fsync: what the service adds), alternating, ``repeats``
        times; the repeat with the lowest p99 without fsync is kept."""
        c = self.config

        def paced(fsync: str) -> Callable[[str], dict[str, Any]]:
            def action() -> dict[str, Any]:
                with redis.client() as client:
                    client.config_set("appendfsync", fsync)
                    client.config_set("latency-monitor-threshold", 1)
                    client.execute_command("LATENCY", "RESET")
                result = run_wrk(api.url, "publish_paced.lua",
                                 self.args("publish", rate=f"{rate:.1f}", threads=c.wrk_threads), c.connections,
                                 c.seconds, c.wrk_threads)
                events = backlog.latency_events(redis)
                with redis.client() as client:
                    client.config_set("latency-monitor-threshold", 0)
                return {**result.summary(), "target_rate": round(rate, 1), "appendfsync": fsync,
                        "redis_latency_events": events}

            return lambda name: self.measure(name, action, settle=settle)

        self.log(f"publish paced at half its max ({rate:.0f} req/s): appendfsync always, then no")
        try:
            repeats = self.repeated("p99_split", [("always", "publish_half", paced("always")),
                                                  ("no", "publish_half_nofsync", paced("no"))])
        finally:
            with redis.client() as client:
                client.config_set("appendfsync", "always")
        kept = best(repeats, lambda r: r["no"]["latency_ms"].get("p99"), higher=False)
        self.results["ours"]["publish_half"] = kept["always"]
        self.results["ours"]["publish_half_nofsync"] = kept["no"]

    def main_section(self) -> None:
        c, ours, ceilings = self.config, self.results["ours"], self.results["ceilings"]
        payload = payload_text()
        with contextlib.ExitStack() as stack:
            redis, api = stack.enter_context(api_stack(c, "main"))
            noop = stack.enter_context(http_server(NOOP_FACTORY, {}, c.workers, ready_path="/v1/queue/publish"))
            bull = stack.enter_context(redis_server("bullmq")) if self.bullmq else None
            for name in ("publish", "batch", "raw", "memory"):
                api.create_queue(name)
            api.create_queue("memory-prio", priority=True)
            settle = functools.partial(backlog.settle_aof, redis)
            bull_settle = functools.partial(backlog.settle_aof, bull) if bull is not None else None
            peer_repeats = None if bull is not None else 1  # without the peer, no ratio to repeat

            kept = self.publish_vs_noop("publish_vs_noop", redis, api, noop, settle, c.wrk_threads)
            ceilings["noop"], ours["publish"] = kept["noop"], kept["publish"]

            self.p99_split(redis, api, settle, max(1.0, ours["publish"]["request_rate"] / 2))

            def batch_run(name: str) -> dict[str, Any]:
                batch = self.wrk(name, api.url, "publish_batch.lua", self.args("batch", batch=100),
                                 c.batch_connections, settle)
                return {**batch.summary(), "msg_rate": round((batch.requests - batch.bad) * 100 / batch.seconds, 1)}

            def bull_run(action: Callable[[], dict[str, Any]]) -> Callable[[str], dict[str, Any]]:
                return lambda name: self.measure(name, action, settle=bull_settle)

            sides: list[tuple[str, str, Callable[[str], dict[str, Any]]]] = [("ours", "publish_batch", batch_run)]
            if bull is not None:
                sides.append(("bullmq", "bullmq.addBulk", bull_run(
                    lambda: bullmq_peer.add_bulk(bull, c.seconds, payload, c.batch_connections))))
            self.log(f"publish_batch of 100, {c.batch_connections} connections"
                     + (f"; BullMQ addBulk of 100, {c.batch_connections} in flight" if bull else ""))
            kept = best(self.repeated("batch_vs_bullmq", sides, peer_repeats),
                        lambda r: ratio(r["ours"]["msg_rate"], r.get("bullmq", {}).get("jobs_per_second")))
            ours["publish_batch"] = kept["ours"]
            bull_results: dict[str, Any] = {}
            if "bullmq" in kept:
                bull_results["addBulk"] = kept["bullmq"]

            if not c.only_targets:
                self.log(f"consume 100 + ack_batch: {c.consume_connections} connections")
                ours["consume_ack"] = self.wrk("consume_ack", api.url, "consume_ack.lua",
                                               self.args("batch", max=100), c.consume_connections, settle).summary()
                self.log(f"work loop, long-poll consume 1 + ack 1 on the next consume: {c.connections} connections")
                ours["work_loop"] = self.wrk("work_loop", api.url, "consume_ack.lua",
                                             self.args("publish", max=1, ackon=1, wait=1), c.connections,
                                             settle).summary()
                self.log(f"work loop, long-poll consume 1 + ack 1 as its own request: {c.connections} connections")
                ours["work_loop_separate"] = self.wrk("work_loop_separate", api.url, "consume_ack.lua",
                                                      self.args("publish", max=1, single=1, wait=1), c.connections,
                                                      settle).summary()

            self.log(f"end to end: {c.e2e_producers} publish_batch + {c.e2e_consumers} consume/ack connections"
                     + ("; BullMQ addBulk producers + Worker" if bull else ""))
            attempt = iter(range(1, 1000))

            def end_to_end() -> dict[str, Any]:
                queue = f"e2e-{next(attempt)}"
                api.create_queue(queue)
                producers = Wrk(api.url, "publish_batch.lua", self.args(queue, batch=100), c.e2e_producers,
                                c.seconds, c.wrk_threads)
                consumers = Wrk(api.url, "consume_ack.lua", self.args(queue, max=100, wait=1), c.e2e_consumers,
                                c.seconds, c.wrk_threads)
                produced, consumed = producers.result(), consumers.result()
                return {
                    "msg_rate": round(consumed.msgs / consumed.seconds, 1),
                    "published_rate": round((produced.requests - produced.bad) * 100 / produced.seconds, 1),
                    "producers": produced.summary(), "consumers": consumed.summary(),
                    "backlog_after": api.stats(queue).get("available"),
                }

            sides = [("ours", "end_to_end", lambda name: self.measure(name, end_to_end, settle=settle))]
            if bull is not None:
                peer = bull
                sides.append(("bullmq", "bullmq.end_to_end", bull_run(lambda: bullmq_peer.end_to_end(
                    peer, c.seconds, payload, c.batch_connections, c.worker_concurrency, f"e2e-{next(attempt)}"))))
            kept = best(self.repeated("e2e_vs_bullmq", sides, peer_repeats),
                        lambda r: ratio(r["ours"]["msg_rate"], r.get("bullmq", {}).get("jobs_per_second")))
            ours["end_to_end"] = kept["ours"]
            if "bullmq" in kept:
                bull_results["end_to_end"] = kept["bullmq"]

            if bull is not None and not c.only_targets:
                self.log(f"BullMQ add ({c.add_inflight} in flight), then a Worker (concurrency {c.worker_concurrency}) "
                         "on what addBulk left")
                bull_results["add"] = self.measure("bullmq.add", lambda: bullmq_peer.add(
                    bull, c.seconds, payload, c.add_inflight), settle=bull_settle)
                bull_results["work"] = self.measure("bullmq.work", lambda: bullmq_peer.work(
                    bull, c.seconds, payload, c.worker_concurrency), settle=bull_settle)
            if bull_results:
                self.results["peers"]["bullmq"] = {"version": bullmq_peer.version(), **bull_results,
                                                   "node": bullmq_peer.node_version()}

            if not c.only_targets:
                self.log("Redis ceiling: our scripts by pipelined EVALSHA")
                ceilings["redis"] = self.measure("redis_ceilings", lambda: backlog.redis_ceilings(self, redis),
                                                 settle=settle)
            if not c.growth:
                for queue, priority in (("memory", False), ("memory-prio", True)):
                    self.results["memory"]["prio_on" if priority else "prio_off"] = backlog.memory(
                        self, redis, queue, c.memory_messages, priority)

    def two_workers_section(self) -> None:
        """Single publish against the no-op ceiling with two API processes: the API and the ceiling both under
        ``uvicorn --workers 2``, wrk with 2 threads (64 connections in all), on a Redis of their own."""
        c = replace(self.config, workers=2)
        with api_stack(c, "two-workers") as (redis, api), http_server(NOOP_FACTORY, {}, 2,
                                                                        ready_path="/v1/queue/publish") as noop:
            api.create_queue("publish")
            settle = functools.partial(backlog.settle_aof, redis)
            kept = self.publish_vs_noop("publish_vs_noop_w2", redis, api, noop, settle, 2, suffix="_w2")
        self.results["ceilings"]["noop_w2"], self.results["ours"]["publish_w2"] = kept["noop"], kept["publish"]

    def peers_section(self) -> None:
        """RabbitMQ (BullMQ is measured in the main section, next to our figures)."""
        c = self.config
        if c.peers == "off":
            return
        reason = rabbitmq.available()
        if reason is None:
            self.log("RabbitMQ: publish with confirms, then end to end")
            self.results["peers"]["rabbitmq"] = {
                **self.measure("rabbitmq", lambda: rabbitmq.run(c.seconds, payload_text(), inflight=c.connections),
                               also=RABBITMQ_PROCESSES),
                "version": rabbitmq.server_version(),
            }
        else:
            self.note(f"RabbitMQ not measured: {reason}")

    def profile_section(self) -> None:
        """py-spy on the worker during single publish: Python frames (not pausing the worker), then
        Python and C frames (pausing it at every sample: shares only, its throughput is not comparable);
        then publish_batch, Python frames; then the GC experiment."""
        self.results["profile"] = {**self.profiles(), "gc": self.gc_pauses()}

    def profiles(self) -> dict[str, Any]:
        c = self.config
        profiles: dict[str, Any] = {}
        runs = [("python", "publish", "publish.lua", {}, c.connections, False),
                ("native", "publish", "publish.lua", {}, c.connections, True),
                ("batch_python", "publish_batch", "publish_batch.lua", {"batch": 100}, c.batch_connections, False),
                ("work_loop_python", "work loop (consume 1 with the previous ack)", "consume_ack.lua",
                 {"max": 1, "ackon": 1, "wait": 1}, c.connections, False)]
        with api_stack(c, "profile") as (_redis, api):
            api.create_queue("profile")
            # The work loop's stock: what publish_batch puts in, a few seconds longer than the loop runs.
            run_wrk(api.url, "publish_batch.lua", self.args("profile", batch=100), c.batch_connections,
                    max(2, c.seconds // 2), c.wrk_threads)
            attempts = iter(range(1, 1000))
            for label, operation, script, extra, connections, native in runs:
                frames = "Python and C" if native else "Python"
                self.log(f"profile ({frames} frames): py-spy on the worker during {operation}")

                def profiled(native: bool = native, label: str = label, script: str = script,
                             extra: dict[str, Any] = extra, connections: int = connections) -> tuple[float, Path]:
                    path = self.tmp / f"profile-{label}-{next(attempts)}.collapsed"
                    load = Wrk(api.url, script, self.args("profile", **extra), connections, c.seconds + 2,
                               c.wrk_threads)
                    time.sleep(1)
                    pyspy.record(api.server.pid, c.seconds, path, native=native)
                    return load.result().request_rate, path

                rate, recorded = self.measure(f"profile_{label}", profiled)
                name = {"native": "publish-native", "python": "publish-python"}.get(label, label)
                path = self.results_dir / f"profile-{name}.collapsed"
                shutil.copyfile(recorded, path)
                profiles[label] = {"file": path.name, "operation": operation,
                                   "request_rate_while_profiled": round(rate, 1),
                                   "categories": pyspy.summarize(path), "entry_points": pyspy.inclusive(path),
                                   "syscalls": pyspy.syscalls(path)}
        return profiles

    def gc_pauses(self) -> dict[str, Any]:
        """Single publish paced at half the max (as in the main section) with every garbage collection
        timed, as the service runs now and with ``gc.freeze()`` after start-up (``bench.gcprobe``)."""
        c = self.config
        rate = float(self.results["ours"].get("publish_half", {}).get("target_rate") or 1000)
        out: dict[str, Any] = {"rate": round(rate, 1)}
        for freeze in (False, True):
            label = "freeze" if freeze else "as_is"
            self.log(f"GC pauses during paced publish ({rate:.0f} req/s), {'with' if freeze else 'without'} "
                     "gc.freeze()")

            def paced(freeze: bool = freeze) -> dict[str, Any]:
                stats = self.tmp / "gc.json"
                stats.unlink(missing_ok=True)
                with redis_server("gc") as redis:
                    env = {**api_env(redis.url, PROJECT, API_KEY), "BENCH_GC_OUT": str(stats),
                           "BENCH_GC_FREEZE": "1" if freeze else "0"}
                    with http_server("bench.gcprobe:create", env, c.workers) as server:
                        api = Api(server)
                        api.create_queue("gc")
                        api.client.close()
                        # Warm up as the main section does (full-speed publish first), then count from zero.
                        run_wrk(server.url, "publish.lua", self.args("gc"), c.connections, min(5, c.seconds),
                                c.wrk_threads)
                        os.kill(server.pid, signal.SIGUSR1)
                        time.sleep(0.2)
                        result = run_wrk(server.url, "publish_paced.lua",
                                         self.args("gc", rate=f"{rate:.1f}", threads=c.wrk_threads), c.connections,
                                         c.seconds, c.wrk_threads)
                        time.sleep(0.3)
                gc_stats = json.loads(stats.read_text()) if stats.exists() else {}
                return {**result.summary(), "gc": gc_stats}

            out[label] = self.measure(f"gc_{label}", paced)
        return out
