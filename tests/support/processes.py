"""Real processes of the tests: the ``broker`` command, a clean environment for it, and how to tell that a
process is alive, serving, or stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis

from .polling import wait_until

#: The console script installed next to the interpreter running the tests.
BROKER_BIN = Path(sys.executable).parent / "broker"


def broker_command(*args: str) -> list[str]:
    """The command line of ``broker *args`` (the console script, or the module where it is not installed)."""
    if BROKER_BIN.exists():
        return [str(BROKER_BIN), *args]
    return [sys.executable, "-m", "broker.cli.main", *args]


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any BROKER_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    env.update(extra)
    return env


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM, and SIGKILL if it has not exited within ``timeout`` seconds; its exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def wait_until_serving(
    proc: subprocess.Popen[bytes], url: str, timeout: float, output: Callable[[], str], path: str = "/healthz"
) -> None:
    """Wait until the server process ``proc`` answers 200 on ``url + path``; fail at once (with ``output()``) if
    it exits meanwhile."""

    def serving() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{' '.join(map(str, proc.args))} exited with {proc.returncode}\n{output()}")
        return httpx.get(url + path, timeout=1).status_code == 200

    wait_until(serving, timeout, what=lambda: f"{url}{path} did not answer 200\n{output()}",
               ignoring=(httpx.TransportError,))


def redis_ready(port: int, **options: Any) -> bool:
    """The redis-server on ``port`` answers and has loaded its data."""
    client = redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=5, **options)
    try:
        info: dict[str, Any] = client.info("persistence")  # type: ignore[assignment]
        return int(info.get("loading", 0)) == 0
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()
