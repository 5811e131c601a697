"""Helpers of the operations tests: run the real ``broker`` command and real ``redis-server`` processes
on temporary directories and free ports, and stop whatever was started."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

#: The console script installed next to the interpreter running the tests.
BROKER_BIN = Path(sys.executable).parent / "broker"
KEY_LINE = re.compile(r'Created API key for project "default" \(shown once\): (bk_[A-Za-z0-9_-]+)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def broker_command(*args: str) -> list[str]:
    if BROKER_BIN.exists():
        return [str(BROKER_BIN), *args]
    return [sys.executable, "-m", "broker.cli.main", *args]


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any BROKER_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    env.update(extra)
    return env


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


@dataclass
class Server:
    """A running ``broker serve``; its output goes to files so no pipe can fill up."""

    proc: subprocess.Popen[bytes]
    port: int
    out_path: Path
    err_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def output(self) -> str:
        return f"--- stdout\n{self.stdout()}\n--- stderr\n{self.stderr()}"

    def created_key(self) -> str | None:
        found = KEY_LINE.search(self.stdout())
        return found.group(1) if found else None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@dataclass
class Processes:
    """Starts ``broker`` and ``redis-server`` processes for one test and stops them all at its end."""

    workdir: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)
    counter: int = 0

    def run(self, *args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a ``broker`` command to its end."""
        return subprocess.run(
            broker_command(*args), env=env, cwd=self.workdir, capture_output=True, text=True, timeout=timeout
        )

    def serve(self, *args: str, env: dict[str, str], port: int | None = None, ready_timeout: float = 30) -> Server:
        """Start ``broker serve`` on a free port and wait until it answers /healthz."""
        port = port or free_port()
        self.counter += 1
        out_path = self.workdir / f"serve-{self.counter}.out"
        err_path = self.workdir / f"serve-{self.counter}.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                broker_command("serve", "--port", str(port), *args),
                env=env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        self.started.append(proc)
        server = Server(proc, port, out_path, err_path)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"broker serve exited with {proc.returncode}\n{server.output()}")
            try:
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"broker serve did not answer within {ready_timeout} s\n{server.output()}")

    def redis_server(self, *args: str, config: Path | None = None) -> tuple[subprocess.Popen[bytes], int]:
        """Start a throw-away redis-server on a free loopback port with ``args`` (after ``config``, which
        they override); (process, port)."""
        from broker.embedded.supervisor import find_redis_server

        port = free_port()
        self.counter += 1
        data = self.workdir / f"redis-{self.counter}"
        data.mkdir()
        command = [find_redis_server(), *([str(config)] if config else [])]
        command += ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", "", *args]
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.started.append(proc)
        import redis

        client = redis.Redis(port=port, socket_connect_timeout=0.5)
        try:
            if not wait_until(lambda: _pings(client), 10):
                raise AssertionError("the test redis-server did not start")
        finally:
            client.close()
        return proc, port

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False
