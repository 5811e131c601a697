"""Helpers of the operations tests: run the real ``broker`` command and real ``redis-server`` processes
on temporary directories and free ports, and stop whatever was started."""

from __future__ import annotations

import re
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from support import alive, broker_command, clean_env, free_port, redis_ready, stop_process, wait_until
from support.processes import BROKER_BIN, wait_until_serving

# The process helpers shared with other folders live in tests/support; re-exported for ``from opskit import``.
__all__ = ["BROKER_BIN", "KEY_LINE", "Processes", "Server", "alive", "broker_command", "clean_env", "free_port",
           "wait_until"]

KEY_LINE = re.compile(r'Created API key for project "default" \(shown once\): (bk_[A-Za-z0-9_-]+)')


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
        wait_until_serving(proc, server.url, ready_timeout, server.output)
        return server

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
        wait_until(lambda: redis_ready(port) or proc.poll() is not None, 10, what="the test redis-server starting")
        if proc.poll() is not None:
            raise AssertionError(f"the test redis-server exited with {proc.returncode}")
        return proc, port

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            stop_process(proc)
