"""Processes a test can break: a durable ``redis-server`` of the test's own that can be killed, frozen and
restarted on its own data (same port, same append-only file), ``broker serve`` processes on it that can be
killed and restarted, and other processes to kill. ``Fleet`` stops every process it started (a frozen one is
thawed first), so a test leaves nothing behind. Used by the fault tests and by the fuzz tests' real server."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from .polling import wait_until
from .ports import free_port
from .processes import alive, broker_command, clean_env, redis_ready, stop_process, wait_until_serving

#: The durability the service requires of an external Redis (its `serve` refuses less).
DURABLE = ("--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction", "--save", "")


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
            proc = self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.frozen = False
        self.starts += 1
        wait_until(lambda: redis_ready(self.port) or proc.poll() is not None, timeout,
                   what=f"redis-server on port {self.port} becoming ready")
        if proc.poll() is not None:
            raise AssertionError(f"redis-server exited with {proc.returncode}: {self.log_tail()}")
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
        stop_process(self.proc)


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
        wait_until_serving(self.proc, self.url, timeout, lambda: self.stderr()[-3000:])
        return self

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
        return stop_process(self.proc, 40)


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

    def spawn(self, *command: str, log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=clean_env(), cwd=cwd or self.workdir)
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
