"""BullMQ peer: installs the pinned npm packages under ``bench/.cache/bullmq`` (never in the repository)
and runs ``bench/peers/bullmq/bench.js`` against a private redis-server with the same durability as ours
(AOF, fsync always)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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


def _base(server: RedisServer, seconds: float, payload: str, queue: str) -> dict[str, Any]:
    return {"port": server.port, "payload": payload, "seconds": seconds, "queue": queue}


def add_bulk(server: RedisServer, seconds: float, payload: str, inflight: int, queue: str = "bulk") -> dict[str, Any]:
    """addBulk of 100 jobs, ``inflight`` calls at once, for ``seconds``."""
    result = Node("addBulk", {**_base(server, seconds, payload, queue), "inflight": inflight, "batch": 100},
                  seconds + 120).result()
    return {**result, "jobs_per_second": job_rate(result)}


def add(server: RedisServer, seconds: float, payload: str, inflight: int, queue: str = "single") -> dict[str, Any]:
    """add of one job, ``inflight`` calls at once, for ``seconds``."""
    result = Node("add", {**_base(server, seconds, payload, queue), "inflight": inflight}, seconds + 120).result()
    return {**result, "jobs_per_second": job_rate(result)}


def work(server: RedisServer, seconds: float, payload: str, concurrency: int, queue: str = "bulk") -> dict[str, Any]:
    """One Worker (``concurrency``, a no-op processor) on what ``queue`` holds, for ``seconds``."""
    result = Node("work", {**_base(server, seconds, payload, queue), "concurrency": concurrency},
                  seconds + 120).result()
    return {**result, "jobs_per_second": job_rate(result)}


def end_to_end(server: RedisServer, seconds: float, payload: str, inflight: int, concurrency: int,
               queue: str) -> dict[str, Any]:
    """addBulk producers and a Worker at once, in two processes, on ``queue`` (a fresh one)."""
    base = _base(server, seconds, payload, queue)
    producer = Node("addBulk", {**base, "inflight": inflight, "batch": 100}, seconds + 120)
    worker = Node("work", {**base, "concurrency": concurrency}, seconds + 120)
    produced, worked = producer.result(), worker.result()
    return {"produce": produced, "work": worked, "jobs_per_second": float(worked["rate"]),
            "added_per_second": float(produced["rate"])}


def node_version() -> str:
    node = shutil.which("node")
    if node is None:
        return "?"
    return subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()

