"""Processes the suite starts and stops itself: redis-server instances, the API under uvicorn, the no-op
ceiling app. Every process gets a free port on 127.0.0.1 and a private temporary directory, and is
stopped (by its own pid) when its context exits."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
CACHE_DIR = BENCH_DIR / ".cache"
RESULTS_DIR = BENCH_DIR / "results"


#: Where the API processes import the service from: the repository, or a snapshot of it during a run.
CODE_DIR = REPO
SERVICE_CODE = ("broker",)


def snapshot_code(target: Path) -> dict[str, object]:
    """Copy the service code (``SERVICE_CODE``) to ``target`` and import it from there, in this process and in
    every API process started afterwards, so one run measures one version even while the code is edited.
    Returns the commit, the files that differ from it, and a digest of the copy."""
    global CODE_DIR
    target.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    for name in SERVICE_CODE:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path in sorted(target.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(target)).encode() + b"\0" + path.read_bytes())
    CODE_DIR = target
    sys.path.insert(0, str(target))

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=30)
        return done.stdout.strip() if done.returncode == 0 else "?"

    changed = git("status", "--porcelain", "--", *SERVICE_CODE)
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted_changes": len(changed.splitlines()),
            "digest": digest.hexdigest()[:16]}


class BenchError(Exception):
    """The suite cannot run (a tool is missing, a process did not start); the message says what to do."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BenchError(f"'{name}' is not on PATH; {hint}")
    return path


def _wait(check: object, what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode}; log:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(Exception):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.05)
    raise BenchError(f"{what} did not become ready in {timeout:.0f} s; log:\n{log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


@dataclass
class RedisServer:
    """A private redis-server: AOF on, fsync on every write (the embedded store's durability)."""

    port: int
    directory: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)

    def used_memory(self) -> int:
        with self.client() as r:
            return int(r.info("memory")["used_memory"])


@contextlib.contextmanager
def redis_server(name: str = "redis") -> Iterator[RedisServer]:
    binary = require_tool("redis-server", "install it (apt-get install -y redis-server)")
    directory = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    port = free_port()
    log = directory / "redis.log"
    args = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
        "--appendonly", "yes", "--appendfsync", "always", "--save", "",
        "--logfile", str(log), "--daemonize", "no",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    server = RedisServer(port, directory, proc)
    try:
        log.touch()

        def ready() -> bool:
            with server.client() as r:
                return bool(r.ping())

        _wait(ready, f"redis-server on port {port}", proc, log)
        yield server
    finally:
        with contextlib.suppress(Exception), server.client() as r:
            r.shutdown(nosave=True)
        _stop(proc)
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class HttpServer:
    """One uvicorn process serving an ASGI factory."""

    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid


def uvicorn_args(factory: str, port: int, workers: int) -> list[str]:
    """The same flags for the API and the ceiling: one event loop per worker, uvloop and httptools when
    installed (uvicorn[standard]), no access log (a log line per request would dominate both)."""
    return [
        sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--no-access-log", "--log-level", "warning",
    ]


@contextlib.contextmanager
def http_server(
    factory: str, env: dict[str, str], workers: int = 1, ready_path: str = "/healthz"
) -> Iterator[HttpServer]:
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="bench-http-"))
    log = directory / "server.log"
    # cwd first on sys.path: the service comes from CODE_DIR; the repository (PYTHONPATH) provides bench.
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    with log.open("wb") as out:
        proc = subprocess.Popen(uvicorn_args(factory, port, workers), env=full_env, cwd=CODE_DIR, stdout=out,
                                stderr=subprocess.STDOUT)
    server = HttpServer(port, proc, log, env)
    try:
        _wait(lambda: httpx.get(server.url + ready_path, timeout=1.0).status_code == 200, factory, proc, log)
        yield server
    finally:
        _stop(proc)
        shutil.rmtree(directory, ignore_errors=True)


def api_env(redis_url: str, project: str, key: str) -> dict[str, str]:
    """The environment of the API under test: its own Redis, one project key, background jobs off when the
    settings know how to turn them off."""
    env = {"BROKER_REDIS_URL": redis_url, "BROKER_API_KEYS": f"{project}:{key}", "BROKER_LOG_LEVEL": "warning"}
    with contextlib.suppress(Exception):
        from broker.settings import Settings

        if Settings.from_env({"BROKER_RUN_WORKERS": "0"}).run_workers is False:
            env["BROKER_RUN_WORKERS"] = "0"
    return env


def run(args: Sequence[str], timeout: float, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=None if env is None else {**os.environ, **env}, check=False)
