"""``broker publish QUEUE --file F.jsonl``: the CLI streaming a JSON Lines file (batches of 1,000) into the API
under test, against the server's publish_batch figure of the same run (``ours.publish_batch.msg_rate``), and
its peak memory at the full size and at a tenth of it (flat when the file is streamed).

The CLI is the service's console script, importing the run's code snapshot; each run publishes to a fresh
queue, whose stats must then show exactly the file's lines. Peak RSS is the process's ``VmHWM``
(``/proc/PID/status``), read every 10 ms while it runs: ``ru_maxrss`` of a child would not do, as Linux
carries the parent's peak over into it when the child is spawned from the parent's memory (vfork)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import procs
from bench.backlog import settle_aof
from bench.procs import BenchError

if TYPE_CHECKING:
    from bench.suite import Api, Suite

#: How long one CLI run may take before it is killed.
TIMEOUT_SECONDS = 900


def write_lines(path: Path, line: str, count: int) -> int:
    """``count`` copies of ``line`` (compact JSON), one per line; returns the file's size."""
    chunk_lines = 10_000
    chunk = (line + "\n") * chunk_lines
    with path.open("w") as out:
        for _ in range(count // chunk_lines):
            out.write(chunk)
        out.write((line + "\n") * (count % chunk_lines))
    return path.stat().st_size


def broker_command() -> list[str]:
    """The ``broker`` console script next to this interpreter (as installed), else the same entry point."""
    script = Path(sys.executable).with_name("broker")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from broker.cli.main import main; sys.exit(main())"]


def run_cli(url: str, key: str, queue: str, path: Path, workdir: Path) -> dict[str, Any]:
    """One ``broker publish QUEUE --file PATH --json --no-progress``: wall time, the CLI's own summary, and its
    peak RSS."""
    command = [*broker_command(), "publish", queue, "--file", str(path), "--url", url, "--key", key, "--json",
               "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(procs.CODE_DIR)}
    stdout, stderr = workdir / f"{queue}.out", workdir / f"{queue}.err"
    peak_kib = 0
    with stdout.open("wb") as out, stderr.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=procs.CODE_DIR)
        status_file = Path(f"/proc/{proc.pid}/status")
        try:
            while proc.poll() is None:
                peak_kib = max(peak_kib, high_water_kib(status_file))
                if time.perf_counter() - started > TIMEOUT_SECONDS:
                    proc.kill()
                time.sleep(0.01)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise BenchError(f"broker publish --file exited with {proc.returncode}:\n"
                         f"{stderr.read_text()[-1500:]}{stdout.read_text()[-500:]}")
    summary: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        summary = json.loads(stdout.read_text())
    return {"seconds": round(seconds, 3), "cli_seconds": summary.get("seconds"), "cli_rate": summary.get("rate"),
            "published": summary.get("published"), "peak_rss_kib": peak_kib}


def high_water_kib(status_file: Path) -> int:
    """``VmHWM`` of a running process (kB), 0 when it cannot be read (the process is gone, or not Linux)."""
    try:
        for line in status_file.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def section(suite: Suite) -> None:
    from bench.suite import API_KEY, api_stack, payload_text

    c = suite.config
    sizes = {"full": c.cli_lines, "tenth": max(1, c.cli_lines // 10)}
    out: dict[str, Any] = {"lines": c.cli_lines, "line_bytes": len(payload_text()) + 1}
    suite.results["cli_publish_file"] = out
    files = {label: suite.tmp / f"cli-{label}.jsonl" for label in sizes}
    try:
        for label, count in sizes.items():
            out[f"{label}_file_bytes"] = write_lines(files[label], payload_text(), count)
        with api_stack(c, "cli") as (redis, api):
            attempts = iter(range(1, 1000))

            def publish(label: str, api: Api = api) -> dict[str, Any]:
                queue = f"cli-{label}-{next(attempts)}"
                api.create_queue(queue)
                result = run_cli(api.url, API_KEY, queue, files[label], suite.tmp)
                available = api.stats(queue).get("available")
                result.update(lines=sizes[label], queue_available=available, exact=available == sizes[label],
                              msg_rate=round(sizes[label] / result["seconds"], 1))
                if not result["exact"]:
                    suite.note(f"cli publish ({label}): the queue holds {available} messages after "
                               f"{sizes[label]:,} lines")
                return result

            settle = functools.partial(settle_aof, redis)
            for label in ("tenth", "full"):  # the small one first: it also warms the server up
                suite.log(f"broker publish --file: {sizes[label]:,} lines")
                out[label] = suite.measure(f"cli_publish.{label}", functools.partial(publish, label), settle=settle)
    finally:
        for path in files.values():
            path.unlink(missing_ok=True)
    out["publish_batch_msg_rate"] = suite.results["ours"].get("publish_batch", {}).get("msg_rate")
