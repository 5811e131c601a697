"""BullMQ peer: installs the pinned npm packages under ``bench/.cache/bullmq`` (never in the repository)
and runs ``bench/peers/bullmq/bench.js`` against a private redis-server with the same durability as ours
(AOF, fsync always)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

from bench.procs import CACHE_DIR, REPO, BenchError, RedisServer

SOURCE = REPO / "bench" / "peers" / "bullmq"
INSTALL = CACHE_DIR / "bullmq"
MANIFESTS = ("package.json", "package-lock.json")


def installed() -> bool:
    """The pinned packages are installed (and match the committed manifests)."""
    if not (INSTALL / "node_modules" / "bullmq").is_dir() or shutil.which("node") is None:
        return False
    return all((INSTALL / m).exists() and (INSTALL / m).read_bytes() == (SOURCE / m).read_bytes()
               for m in MANIFESTS if (SOURCE / m).exists())


def install() -> None:
    """``npm ci`` of the committed lock file into the cache directory."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise BenchError("node and npm are needed for the BullMQ peer (apt-get install -y nodejs npm)")
    INSTALL.mkdir(parents=True, exist_ok=True)
    for name in MANIFESTS:
        if (SOURCE / name).exists():
            shutil.copyfile(SOURCE / name, INSTALL / name)
    command = [npm, "ci" if (INSTALL / "package-lock.json").exists() else "install", "--no-audit", "--no-fund"]
    done = subprocess.run(command, cwd=INSTALL, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise BenchError(f"npm failed in {INSTALL}:\n{done.stderr[-2000:]}")


def version() -> str:
    try:
        data = json.loads((INSTALL / "node_modules" / "bullmq" / "package.json").read_text())
        return str(data["version"])
    except (OSError, ValueError, KeyError):
        return "?"


class Node:
    """One running ``bench.js`` mode."""

    def __init__(self, mode: str, options: dict[str, Any], timeout: float):
        env = {**os.environ, "NODE_PATH": str(INSTALL / "node_modules")}
        self.mode = mode
        self.timeout = timeout
        self.proc = subprocess.Popen(["node", str(SOURCE / "bench.js"), mode, json.dumps(options)], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self) -> dict[str, Any]:
        try:
            out, err = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        for line in out.splitlines():
            if line.startswith("BENCH_RESULT "):
                parsed: dict[str, Any] = json.loads(line.split(" ", 1)[1])
                return parsed
        raise BenchError(f"bullmq {self.mode} failed:\n{err[-2000:]}")


def job_rate(result: dict[str, Any]) -> float:
    """Completed jobs/s; over the active time when the queue ran dry before the end."""
    if result.get("mode") == "work" and result.get("waiting", 1) == 0 and result.get("active_seconds", 0) > 0:
        return float(result["jobs"]) / float(result["active_seconds"])
    return float(result["rate"])


def run(server: RedisServer, seconds: float, payload: str, bulk_inflight: int, add_inflight: int = 50,
        concurrency: int = 50, settle: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """addBulk of 100; add with ``add_inflight`` in flight; a Worker on the addBulk backlog; then producers
    (addBulk) and a Worker at once, in two processes, on a fresh queue. ``settle`` runs before each (it
    waits for an AOF rewrite of the Redis to end, as before each of our measurements)."""
    base = {"port": server.port, "payload": payload, "seconds": seconds}
    timeout = seconds + 120
    results: dict[str, Any] = {"version": version()}
    settle()
    results["addBulk"] = Node("addBulk", {**base, "queue": "bulk", "inflight": bulk_inflight, "batch": 100},
                              timeout).result()
    settle()
    results["add"] = Node("add", {**base, "queue": "single", "inflight": add_inflight}, timeout).result()
    settle()
    results["work"] = Node("work", {**base, "queue": "bulk", "concurrency": concurrency}, timeout).result()
    settle()
    producer = Node("addBulk", {**base, "queue": "e2e", "inflight": bulk_inflight, "batch": 100}, timeout)
    worker = Node("work", {**base, "queue": "e2e", "concurrency": concurrency}, timeout)
    results["end_to_end"] = {"produce": producer.result(), "work": worker.result()}
    for name in ("addBulk", "add", "work"):
        results[name]["jobs_per_second"] = job_rate(results[name])
    e2e = results["end_to_end"]
    e2e["jobs_per_second"] = float(e2e["work"]["rate"])
    e2e["added_per_second"] = float(e2e["produce"]["rate"])
    return results


def node_version() -> str:
    node = shutil.which("node")
    if node is None:
        return "?"
    return subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()

