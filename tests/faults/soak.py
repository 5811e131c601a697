"""The soak run behind ``scripts/soak``: ``broker serve`` on its embedded store (the default deployment) under
a steady load for a long time, sampled every ``--interval`` seconds.

Load: publishers publish at ``--rate`` messages per second (open loop: a slow answer does not slow the
schedule down, up to ``--concurrency`` requests in flight), consumers long-poll, consume and ack. Each row
of the table is one interval: throughput, backlog, p50/p99 latency of publish, of ack and from publish to
delivery (end to end), errors, the RSS of the API process and of its redis-server, and Redis's
``used_memory``. At the end the publishers stop, the queue is drained, and the run checks that every
acknowledged publish was delivered and acked (exit 1 otherwise, or on any 5xx).

    scripts/soak [--minutes 10] [--rate 100] [--interval 10] [--report FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from broker.embedded.supervisor import owner_url

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/, for the helpers the test folders share (run as a script)
from support import broker_command, clean_env, free_port, wait_until_serving  # noqa: E402


def rss_mib(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Window:
    published: int = 0
    acked: int = 0
    errors: int = 0
    publish_ms: list[float] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)
    e2e_ms: list[float] = field(default_factory=list)


@dataclass
class Totals:
    acknowledged: set[str] = field(default_factory=set)
    completed: set[str] = field(default_factory=set)
    deliveries: int = 0
    server_errors: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)


class Soak:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.window = Window()
        self.totals = Totals()
        self.rows: list[dict[str, Any]] = []
        self.publishing = True
        self.consuming = True
        self.counter = 0
        self.key = f"soak-{uuid.uuid4().hex}"
        self.workdir = Path(tempfile.mkdtemp(prefix="broker-soak-"))
        self.data_dir = self.workdir / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.redis: Any = None

    # --- the server -------------------------------------------------------------------------------
    def start_server(self) -> None:
        env = clean_env(BROKER_API_KEYS=f"soak:{self.key}", BROKER_LOG_LEVEL="warning")
        with open(self.workdir / "serve.err", "ab") as err:
            self.proc = subprocess.Popen(
                broker_command("serve", "--port", str(self.port), "--data-dir", str(self.data_dir)),
                env=env, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT,
            )
        try:
            wait_until_serving(self.proc, f"http://127.0.0.1:{self.port}", 60,
                               lambda: (self.workdir / "serve.err").read_text()[-2000:], path="/readyz")
        except AssertionError as exc:
            raise SystemExit(f"broker serve did not start: {exc}") from None
        url = owner_url(self.data_dir)
        self.redis = redis.Redis.from_url(url or "", socket_timeout=5)

    def stop_server(self) -> None:
        if self.redis is not None:
            self.redis.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def redis_pid(self) -> int | None:
        try:
            return int((self.data_dir / "redis.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    # --- the load ---------------------------------------------------------------------------------
    async def post(self, http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response | None:
        """POST and record the answer's status; None (counted as an error) when no answer came."""
        try:
            response = await http.post(path, json=body)
        except httpx.HTTPError:
            self.window.errors += 1
            return None
        self.record(response)
        return response

    def record(self, response: httpx.Response) -> None:
        self.totals.statuses[response.status_code] = self.totals.statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            self.totals.server_errors.append(f"{response.status_code} {response.text[:200]}")
        if response.status_code != 200:
            self.window.errors += 1

    async def publish_one(self, http: httpx.AsyncClient, slots: asyncio.Semaphore) -> None:
        try:
            self.counter += 1
            pid = f"s{self.counter}"
            body = {"queue": "soak", "payload": {"id": pid, "t": time.time(), "pad": "x" * self.args.payload}}
            started = time.monotonic()
            response = await self.post(http, "/v1/queue/publish", body)
            if response is not None and response.status_code == 200:
                self.window.published += 1
                self.window.publish_ms.append((time.monotonic() - started) * 1000)
                self.totals.acknowledged.add(pid)
        finally:
            slots.release()

    async def publisher(self, http: httpx.AsyncClient) -> None:
        slots = asyncio.Semaphore(self.args.concurrency)
        interval = 1 / self.args.rate
        next_at = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()
        while self.publishing:
            next_at += interval
            await slots.acquire()
            task = asyncio.create_task(self.publish_one(http, slots))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await asyncio.gather(*tasks)

    async def consumer(self, http: httpx.AsyncClient) -> None:
        body = {"queue": "soak", "max_messages": 10, "wait_seconds": 1, "visibility_timeout": 30}
        while self.consuming:
            response = await self.post(http, "/v1/queue/consume", body)
            if response is None or response.status_code != 200:
                await asyncio.sleep(0.1)
                continue
            now = time.time()
            messages = response.json()["messages"]
            for message in messages:
                self.totals.deliveries += 1
                self.window.e2e_ms.append((now - message["payload"]["t"]) * 1000)
            await asyncio.gather(*(self.ack(http, message) for message in messages))

    async def ack(self, http: httpx.AsyncClient, message: dict[str, Any]) -> None:
        started = time.monotonic()
        body = {"queue": "soak", "message_id": message["message_id"], "receipt": message["receipt"]}
        acked = await self.post(http, "/v1/queue/ack", body)
        if acked is not None and acked.status_code == 200:
            self.window.acked += 1
            self.window.ack_ms.append((time.monotonic() - started) * 1000)
            self.totals.completed.add(message["payload"]["id"])

    # --- sampling ---------------------------------------------------------------------------------
    async def stats(self, http: httpx.AsyncClient) -> dict[str, Any]:
        try:
            response = await http.get("/v1/queue/stats/soak")
            return response.json() if response.status_code == 200 else {}
        except httpx.HTTPError:
            return {}

    async def sample(self, http: httpx.AsyncClient, started: float, seconds: float) -> dict[str, Any]:
        window, self.window = self.window, Window()
        stats = await self.stats(http)
        try:
            used = int(self.redis.info("memory")["used_memory"]) / 2**20
        except Exception:
            used = float("nan")
        row = {
            "t_s": round(time.monotonic() - started),
            "publish_per_s": round(window.published / seconds, 1),
            "ack_per_s": round(window.acked / seconds, 1),
            "backlog": stats.get("available", 0) + stats.get("in_flight", 0),
            "publish_p50_ms": round(percentile(window.publish_ms, 0.50), 2),
            "publish_p99_ms": round(percentile(window.publish_ms, 0.99), 2),
            "ack_p50_ms": round(percentile(window.ack_ms, 0.50), 2),
            "ack_p99_ms": round(percentile(window.ack_ms, 0.99), 2),
            "e2e_p50_ms": round(percentile(window.e2e_ms, 0.50), 2),
            "e2e_p99_ms": round(percentile(window.e2e_ms, 0.99), 2),
            "errors": window.errors,
            "serve_rss_mib": round(rss_mib(self.proc.pid if self.proc else None), 1),
            "redis_rss_mib": round(rss_mib(self.redis_pid()), 1),
            "used_memory_mib": round(used, 2),
        }
        self.rows.append(row)
        print(format_row(row), flush=True)
        return row

    async def run(self) -> int:
        args = self.args
        self.start_server()
        base = f"http://127.0.0.1:{self.port}"
        limits = httpx.Limits(max_connections=args.concurrency + args.consumers * 11 + 4)
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {self.key}"}, timeout=30,
                                     limits=limits) as http:
            created = await http.post("/v1/queue/create", json={"name": "soak"})
            if created.status_code != 200:
                raise SystemExit(f"create failed: {created.text}")
            print(f"soak: {args.minutes} min at {args.rate} messages/s, {args.consumers} consumers, sampling every "
                  f"{args.interval} s; broker serve pid {self.proc.pid if self.proc else '?'} on {base}, data in "
                  f"{self.data_dir}", flush=True)
            print(HEADER, flush=True)
            started = time.monotonic()
            tasks = [asyncio.create_task(self.publisher(http))]
            tasks += [asyncio.create_task(self.consumer(http)) for _ in range(args.consumers)]
            end = started + args.minutes * 60
            last = started
            while time.monotonic() < end:
                await asyncio.sleep(min(args.interval, max(0.0, end - time.monotonic())))
                now = time.monotonic()
                await self.sample(http, started, now - last)
                last = now
            self.publishing = False
            await tasks[0]
            drain_deadline = time.monotonic() + 120
            while time.monotonic() < drain_deadline:
                stats = await self.stats(http)
                if stats and stats["available"] == stats["in_flight"] == stats["delayed"] == 0:
                    break
                await asyncio.sleep(0.5)
            self.consuming = False
            await asyncio.gather(*tasks[1:])
            final = await self.stats(http)
        return self.report(final)

    def report(self, final: dict[str, Any]) -> int:
        t = self.totals
        lost = sorted(t.acknowledged - t.completed)
        summary = {
            "minutes": self.args.minutes,
            "rate": self.args.rate,
            "acknowledged": len(t.acknowledged),
            "delivered": t.deliveries,
            "acked": len(t.completed),
            "lost": len(lost),
            "server_errors": len(t.server_errors),
            "statuses": t.statuses,
            "final_stats": final,
            "publish_p99_ms_max": max((r["publish_p99_ms"] for r in self.rows), default=None),
            "serve_rss_mib_first_last": [self.rows[0]["serve_rss_mib"], self.rows[-1]["serve_rss_mib"]]
            if self.rows else None,
            "used_memory_mib_first_last": [self.rows[0]["used_memory_mib"], self.rows[-1]["used_memory_mib"]]
            if self.rows else None,
            "rows": self.rows,
        }
        columns = ("publish_p50_ms", "publish_p99_ms", "ack_p50_ms", "ack_p99_ms", "e2e_p50_ms", "e2e_p99_ms")
        medians = {k: statistics.median(r[k] for r in self.rows) for k in columns} if self.rows else {}
        print(f"soak: acknowledged {len(t.acknowledged)}, delivered {t.deliveries}, acked {len(t.completed)}, "
              f"lost {len(lost)}, 5xx {len(t.server_errors)}; responses {t.statuses}; final stats {final}")
        print(f"soak: median over the windows: {medians}")
        if self.args.report:
            Path(self.args.report).write_text(json.dumps(summary, indent=2) + "\n")
        return 1 if lost or t.server_errors else 0


HEADER = (f"{'t s':>6} {'pub/s':>7} {'ack/s':>7} {'backlog':>8} {'pub p50':>8} {'pub p99':>8} {'ack p50':>8} "
          f"{'ack p99':>8} {'e2e p50':>8} {'e2e p99':>8} {'errors':>6} {'serve MiB':>10} {'redis MiB':>10} "
          f"{'used MiB':>9}")


def format_row(r: dict[str, Any]) -> str:
    return (f"{r['t_s']:>6} {r['publish_per_s']:>7} {r['ack_per_s']:>7} {r['backlog']:>8} {r['publish_p50_ms']:>8} "
            f"{r['publish_p99_ms']:>8} {r['ack_p50_ms']:>8} {r['ack_p99_ms']:>8} {r['e2e_p50_ms']:>8} "
            f"{r['e2e_p99_ms']:>8} {r['errors']:>6} {r['serve_rss_mib']:>10} {r['redis_rss_mib']:>10} "
            f"{r['used_memory_mib']:>9}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load runs (default 10)")
    parser.add_argument("--rate", type=float, default=100.0, help="messages published per second (default 100)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--consumers", type=int, default=4, help="consumer loops (default 4)")
    parser.add_argument("--concurrency", type=int, default=32, help="publishes in flight at most (default 32)")
    parser.add_argument("--payload", type=int, default=256, help="padding bytes per payload (default 256)")
    parser.add_argument("--report", metavar="FILE", help="also write the figures as JSON to FILE")
    args = parser.parse_args(argv)
    soak = Soak(args)
    try:
        return asyncio.run(soak.run())
    finally:
        soak.stop_server()
        if not os.environ.get("BROKER_SOAK_KEEP"):
            shutil.rmtree(soak.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
