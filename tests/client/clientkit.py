"""Helpers of the client tests: the real server they talk to (``broker serve`` on a redis-server of its own,
background jobs on, push to loopback allowed), the ``broker`` command run against it, code blocks taken from
docs/client.md, and a TCP proxy that can lose an answer on purpose."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from support import broker_command, clean_env

ROOT = Path(__file__).resolve().parents[2]
CLIENT_DOC = ROOT / "docs" / "client.md"
_BLOCK = re.compile(r"<!-- example: (?P<name>[\w.-]+) -->\s*```(?:python|console|bash|sh)?\n(?P<code>.*?)```", re.S)


@dataclass(frozen=True)
class Server:
    """The server of the session: its URL, a key of the project ``client`` and one of the project ``limited``."""

    url: str
    key: str
    limited_key: str
    redis_url: str

    def env(self, **extra: str) -> dict[str, str]:
        """An environment for client programs: BROKER_URL and BROKER_KEY, no other BROKER_* variable."""
        return clean_env(**{"BROKER_URL": self.url, "BROKER_KEY": self.key, **extra})


def run_broker(*args: str, env: dict[str, str], input: bytes | None = None, timeout: float = 60,
               cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the ``broker`` command to its end; output as bytes."""
    return subprocess.run(broker_command(*args), env=env, input=input, capture_output=True, timeout=timeout,
                          cwd=cwd, check=False)


def examples() -> dict[str, str]:
    """The code blocks of docs/client.md marked ``<!-- example: NAME -->``, by name."""
    return {m.group("name"): m.group("code") for m in _BLOCK.finditer(CLIENT_DOC.read_text())}


@dataclass
class LossyProxy:
    """A TCP proxy to ``target_port`` that, for the first ``lose`` connections, forwards the request and reads
    the server's whole answer, then closes the client's connection without passing the answer on: the server
    acted, the client never learns of it. Later connections are passed through."""

    target_port: int
    lose: int = 1
    connections: int = 0
    port: int = 0
    _server: socket.socket | None = None
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> LossyProxy:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            losing = self.lose > 0
            self.lose -= 1
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn, losing), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket, losing: bool) -> None:
        with conn, socket.create_connection(("127.0.0.1", self.target_port)) as upstream:
            if losing:
                upstream.sendall(_read_request(conn))
                upstream.shutdown(socket.SHUT_WR)
                while upstream.recv(65536):  # the whole answer, so the server surely acted
                    pass
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                return  # closed (reset) without an answer
            _pipe_both(conn, upstream)


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _pipe_both(client: socket.socket, upstream: socket.socket) -> None:
    def pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    other = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    other.start()
    pump(client, upstream)
    other.join(30)


@contextlib.contextmanager
def lossy_proxy(target_port: int, lose: int = 1) -> Iterator[LossyProxy]:
    proxy = LossyProxy(target_port, lose).start()
    try:
        yield proxy
    finally:
        proxy.close()
