"""Running wrk with the scripts in ``bench/wrk/`` and reading their result line."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import BENCH_DIR, BenchError, require_tool

WRK_DIR = BENCH_DIR / "wrk"


@dataclass
class WrkResult:
    """One wrk run: counters summed over its threads, latency in microseconds."""

    requests: int
    seconds: float
    msgs: int
    bad: int
    empty: int
    spent: int
    active_seconds: float
    errors: dict[str, int]
    latency_us: dict[str, float]

    @property
    def request_rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ran_dry(self) -> bool:
        """The queue emptied (or the leases ran out) before the end of the run."""
        return self.empty > 0 or self.spent > 0

    @property
    def msg_rate(self) -> float:
        """Messages per second; over the active time when the run ran dry before its end."""
        window = self.active_seconds if self.ran_dry and self.active_seconds > 0 else self.seconds
        return self.msgs / window if window else 0.0

    def failures(self) -> int:
        return self.bad + sum(self.errors.values())

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests, "seconds": round(self.seconds, 3), "request_rate": round(self.request_rate, 1),
            "msgs": self.msgs, "msg_rate": round(self.msg_rate, 1), "ran_dry": self.ran_dry,
            "active_seconds": round(self.active_seconds, 3), "bad_status": self.bad, "errors": self.errors,
            "latency_ms": {k: round(v / 1000, 3) for k, v in self.latency_us.items()},
        }


def wrk_command(url: str, script: str, args: dict[str, Any], connections: int, seconds: float,
                threads: int = 1) -> list[str]:
    binary = require_tool("wrk", "install it (apt-get install -y wrk)")
    return [
        binary, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(WRK_DIR / script), url, "--", *(f"{k}={v}" for k, v in args.items()),
    ]


def parse(stdout: str, stderr: str, script: str) -> WrkResult:
    for line in stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            raw = json.loads(line.split(" ", 1)[1])
            return WrkResult(
                requests=raw["requests"], seconds=raw["duration_us"] / 1e6, msgs=raw["msgs"], bad=raw["bad"],
                empty=raw["empty"], spent=raw["spent"], active_seconds=raw["active_s"], errors=raw["errors"],
                latency_us=raw["latency_us"],
            )
    raise BenchError(f"wrk {script} printed no result:\n{stdout[-1500:]}\n{stderr[-1500:]}")


class Wrk:
    """A running wrk; ``result()`` waits for it."""

    def __init__(self, url: str, script: str, args: dict[str, Any], connections: int, seconds: float,
                 threads: int = 1, cwd: Path | None = None):
        self.script = script
        self.timeout = seconds + 60
        self.proc = subprocess.Popen(wrk_command(url, script, args, connections, seconds, threads), cwd=cwd,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self) -> WrkResult:
        try:
            out, err = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return parse(out, err, self.script)


def run_wrk(url: str, script: str, args: dict[str, Any], connections: int, seconds: float,
            threads: int = 1) -> WrkResult:
    return Wrk(url, script, args, connections, seconds, threads).result()
