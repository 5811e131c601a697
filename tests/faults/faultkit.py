"""Processes of the fault tests: a durable ``redis-server`` of the test's own that can be killed, frozen and
restarted on its own data (same port, same append-only file), ``broker serve`` processes on it that can be
killed and restarted, and a throw-away consumer process to kill while it holds leases. ``Fleet`` stops
every process it started (a frozen one is thawed first), so a test leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ops"))
from opskit import alive, broker_command, clean_env, free_port, wait_until

__all__ = ["DURABLE", "FULL", "ApiServer", "Fleet", "RedisNode", "alive", "clean_env", "free_port", "wait_until"]

#: ``BROKER_FAULTS_FULL=1``: the full-size fault run (see docs/reliability.md) instead of the reduced one.
FULL = os.environ.get("BROKER_FAULTS_FULL", "").strip().lower() in ("1", "true", "yes", "on")

#: The durability the service requires of an external Redis (its `serve` refuses less).
DURABLE = ("--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction", "--save", "")
HERE = Path(__file__).resolve().parent


def _ready(client: redis.Redis) -> bool:
    try:
        client.ping()
        info: dict[str, Any] = client.info("persistence")  # type: ignore[assignment]
        return int(info.get("loading", 0)) == 0
    except (redis.RedisError, OSError):
        return False


@dataclass
class RedisNode:
    """A redis-server on a fixed loopback port and data directory."""

    directory: Path
    extra: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    frozen: bool = False
    starts: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **options: Any) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=10, **options)

    def start(self, timeout: float = 60) -> RedisNode:
        from broker.embedded.supervisor import find_redis_server

        self.directory.mkdir(parents=True, exist_ok=True)
        command = [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                   *DURABLE, *self.extra]
        with open(self.directory / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.frozen = False
        self.starts += 1
        client = self.client()
        try:
            if not wait_until(lambda: _ready(client) or self.proc is None or self.proc.poll() is not None, timeout):
                raise AssertionError(f"redis-server on port {self.port} did not become ready within {timeout} s")
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}: {self.log_tail()}")
        finally:
            client.close()
        return self

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.directory / "redis.log").read_text(errors="replace").splitlines()[-lines:])
        return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop it abruptly (SIGKILL: what it acknowledged is in its AOF, nothing else is flushed)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            if self.frozen and sig != signal.SIGKILL:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.wait(30)
        self.frozen = False

    def freeze(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)
            self.frozen = True

    def thaw(self) -> None:
        if self.proc is not None and self.frozen:
            self.proc.send_signal(signal.SIGCONT)
            self.frozen = False

    def wipe(self) -> None:
        """Delete its data (while stopped): the next start is an empty store."""
        if self.running():
            raise AssertionError("wipe() needs a stopped redis-server")
        shutil.rmtree(self.directory / "appendonlydir", ignore_errors=True)
        for name in ("appendonly.aof", "dump.rdb"):
            (self.directory / name).unlink(missing_ok=True)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.thaw()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class ApiServer:
    """``broker serve`` on an external Redis, restartable on the same port."""

    workdir: Path
    redis_url: str
    api_keys: str
    env_extra: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _err: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def err_path(self) -> Path:
        return self.workdir / f"serve-{self.port}.err"

    def env(self) -> dict[str, str]:
        return clean_env(BROKER_REDIS_URL=self.redis_url, BROKER_API_KEYS=self.api_keys,
                         BROKER_LOG_LEVEL="warning", **self.env_extra)

    def start(self, timeout: float = 60) -> ApiServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(
                broker_command("serve", "--port", str(self.port), *self.args),
                env=self.env(), cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT,
            )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"broker serve exited with {self.proc.returncode}:\n{self.stderr()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.05)
        raise AssertionError(f"broker serve did not answer within {timeout} s:\n{self.stderr()[-3000:]}")

    def stderr(self) -> str:
        with contextlib.suppress(OSError):
            return self.err_path.read_text(errors="replace")
        return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@dataclass
class Fleet:
    """Everything one test started; ``stop_all`` leaves no process behind."""

    workdir: Path
    nodes: list[RedisNode] = field(default_factory=list)
    servers: list[ApiServer] = field(default_factory=list)
    others: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def redis(self, *extra: str, name: str | None = None) -> RedisNode:
        node = RedisNode(self.workdir / (name or f"redis-{len(self.nodes) + 1}"), tuple(extra))
        self.nodes.append(node)
        return node.start()

    def serve(self, redis_url: str, api_keys: str, *args: str, **env: str) -> ApiServer:
        server = ApiServer(self.workdir, redis_url, api_keys, dict(env), tuple(args))
        self.servers.append(server)
        return server.start()

    def spawn(self, *command: str, log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=clean_env(), cwd=HERE)
        self.others.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.others:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for server in self.servers:
            server.stop()
        for node in self.nodes:
            node.stop()


def pids_alive(fleet: Fleet) -> list[int]:
    """Processes of the fleet still running (for the no-orphans check)."""
    procs = [n.proc for n in fleet.nodes] + [s.proc for s in fleet.servers] + fleet.others
    return [p.pid for p in procs if p is not None and alive(p.pid)]
