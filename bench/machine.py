"""Facts about the machine and the software versions, recorded with every run."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

PYTHON_PACKAGES = ("starlette", "uvicorn", "msgspec", "redis", "hiredis", "uvloop", "httptools", "aio-pika",
                   "matplotlib", "py-spy")


def _first_line(args: list[str]) -> str:
    if shutil.which(args[0]) is None:
        return "not installed"
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=10)
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "?"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def memory_total() -> str:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    kib = int(line.split()[1])
                    return f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    return "?"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def redis_version() -> str:
    line = _first_line(["redis-server", "--version"])
    match = re.search(r"v=(\S+)", line)
    return match.group(1) if match else line


def facts() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "memory": memory_total(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis_server": redis_version(),
        "wrk": _first_line(["wrk", "--version"]).split(" [")[0],
        "node": _first_line(["node", "--version"]),
        "packages": {name: package_version(name) for name in PYTHON_PACKAGES},
    }


def fsync_latency(directory: str | None = None, samples: int = 200) -> dict[str, float]:
    """Append 200 bytes and fsync, ``samples`` times, in a temporary file (where the suite's Redis
    servers keep their AOF): the floor under every publish with ``appendfsync always``."""
    times = []
    with tempfile.NamedTemporaryFile(dir=directory, prefix="bench-fsync-") as f:
        for _ in range(samples):
            f.write(b"x" * 200)
            f.flush()
            t0 = time.perf_counter()
            os.fsync(f.fileno())
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"p50_ms": round(times[len(times) // 2], 3), "p99_ms": round(times[int(len(times) * 0.99) - 1], 3),
            "max_ms": round(times[-1], 3)}


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_ticks() -> int:
    """CPU time of the whole machine that was not idle (all cores), in clock ticks."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return user + nice + system + irq + softirq + steal


def _own_ticks(also: tuple[str, ...] = ()) -> int:
    """CPU time of this process, its reaped children, its live descendants, and of the processes named
    in ``also`` (a peer's server that the suite did not start), in clock ticks."""
    me = os.getpid()
    parents: dict[int, int] = {}
    cpu: dict[int, int] = {}
    extra = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        head, _, tail = raw.rpartition(")")
        rest = tail.split()
        pid = int(entry.name)
        parents[pid] = int(rest[1])
        own = int(rest[11]) + int(rest[12])
        if also and head.partition("(")[2] in also:
            extra += own
            continue
        cpu[pid] = own + (int(rest[13]) + int(rest[14]) if pid == me else 0)
    total = extra
    for pid, ticks in cpu.items():
        walker, seen = pid, 0
        while walker and walker != me and seen < 64:
            walker, seen = parents.get(walker, 0), seen + 1
        if walker == me:
            total += ticks
    return total


class CpuMeter:
    """Average cores busy during a phase: in all, in the suite's own processes, and in everything else
    on the machine (other users' work competes with the measurement on a small machine)."""

    def __init__(self, also: tuple[str, ...] = ()) -> None:
        self.also = also
        self.available = Path("/proc/stat").exists()
        self.started = time.monotonic()
        self.busy = _busy_ticks() if self.available else 0
        self.own = _own_ticks(also) if self.available else 0

    def stop(self) -> dict[str, float]:
        if not self.available:
            return {}
        seconds = max(1e-6, time.monotonic() - self.started)
        busy = (_busy_ticks() - self.busy) / _TICK / seconds
        own = (_own_ticks(self.also) - self.own) / _TICK / seconds
        return {"busy_cores": round(busy, 2), "suite_cores": round(own, 2),
                "other_cores": round(max(0.0, busy - own), 2)}
