"""The limits of a real ``broker serve`` facing the network, over raw sockets (so uvicorn and its parser are in
front, as for any client): request heads are capped (431 in the contract's shape, and an endless header costs
no memory), connections that do not complete a request head in time are closed, the connections per process
are capped without locking normal clients out (even under a small descriptor limit), nothing redirects, and
a request with two Authorization headers is refused on every path."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from support import broker_command, free_port, wait_until, wait_until_serving
from support.fleet import ApiServer, RedisNode

from broker.http.server import ConnectionLimits, H11Server, HttpToolsServer

HEADER_TIMEOUT = 2  # seconds, for the servers of these tests (the default is 5)
NOFILE = 256  # the descriptor limit of the constrained server (the report's)


@dataclass
class Served:
    server: ApiServer
    key: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=10)

    def rss_kib(self) -> int:
        assert self.server.proc is not None
        for line in Path(f"/proc/{self.server.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


class LimitedServer(ApiServer):
    """``broker serve`` started under a descriptor limit (``ulimit -n``), as on a small host."""

    nofile: int = NOFILE

    def start(self, timeout: float = 60) -> ApiServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = ["sh", "-c", f'ulimit -n {self.nofile} && exec "$0" "$@"',
                   *broker_command("serve", "--port", str(self.port), *self.args)]
        with open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(command, env=self.env(), cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=subprocess.STDOUT)
        self.starts += 1
        wait_until_serving(self.proc, self.url, timeout, lambda: self.stderr()[-3000:])
        return self


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisNode]:
    redis = RedisNode(tmp_path_factory.mktemp("hardening") / "redis").start()
    yield redis
    redis.stop()


def start(node: RedisNode, workdir: Path, cls: type[ApiServer] = ApiServer, **env: str) -> Served:
    key = f"hardening-{uuid.uuid4().hex}"
    server = cls(workdir, node.url, f"hard:{key}", {"BROKER_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT), **env},
                 ("--no-workers",))
    server.start()
    served = Served(server, key)
    with served.client() as http:
        http.post("/v1/queue/create", json={"name": "jobs"}).raise_for_status()
    return served


@pytest.fixture(scope="module")
def small(node: RedisNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server under a 256-descriptor limit (its connection cap is lowered to fit)."""
    served = start(node, tmp_path_factory.mktemp("small"), LimitedServer)
    yield served
    served.server.stop()


# --- raw HTTP ------------------------------------------------------------------------------------------------
@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, Any]:
        """The contract's error body, checked: its shape and its X-Request-Id."""
        assert self.headers.get("content-type", "").startswith("application/json"), self
        error: dict[str, Any] = json.loads(self.body)["error"]
        assert {"code", "message", "request_id"} <= set(error), error
        assert error["request_id"] == self.headers["x-request-id"]
        return error


def read_answer(sock: socket.socket, timeout: float = 10) -> Answer:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before an answer: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Answer(int(status_line.split()[1]), headers, body)


def exchange(port: int, request: bytes, timeout: float = 10) -> Answer:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        return read_answer(sock, timeout)


def request(method: str, path: str, *headers: str, body: bytes = b"", host: str = "localhost") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *headers, f"Content-Length: {len(body)}",
             "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def closed_by_peer(sock: socket.socket) -> bool:
    """The server closed the connection (end of stream or reset); False while it is open."""
    sock.settimeout(0)
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def healthy(port: int, timeout: float = 2) -> bool:
    try:
        return exchange(port, request("GET", "/healthz"), timeout).status == 200
    except OSError:
        return False


# --- item 1: request heads ---------------------------------------------------------------------------------
def test_a_request_head_over_16_kib_is_431_in_the_error_shape(small: Served) -> None:
    big = "X-Big: " + "a" * 20_000
    complete = exchange(small.port, request("GET", "/healthz", big))  # the whole head in one read
    assert complete.status == 431 and complete.error()["code"] == "HEADERS_TOO_LARGE"
    assert complete.headers["connection"] == "close"
    with socket.create_connection(("127.0.0.1", small.port), timeout=10) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: x\r\n{big}".encode())  # never finished
        unfinished = read_answer(sock)
        assert unfinished.status == 431 and unfinished.error()["code"] == "HEADERS_TOO_LARGE"
    long_line = exchange(small.port, ("GET /healthz?" + "q" * 20_000 + " HTTP/1.1\r\nHost: x\r\n\r\n").encode())
    assert long_line.status == 431
    under = exchange(small.port, request("GET", "/healthz", "X-Big: " + "a" * 15_000))
    assert under.status == 200  # 16 KiB in all is allowed


def test_endless_headers_cost_no_memory(small: Served) -> None:
    """The report: 16 connections sending 32 MB of one unfinished header grew the server from 64 to 834 MB."""
    before = small.rss_kib()
    chunk = b"a" * 65536
    sent: list[int] = []

    def flood() -> None:
        total = 0
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", small.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Flood: ")
            while total < 32 * 1024 * 1024:
                sock.sendall(chunk)
                total += len(chunk)
        sent.append(total)

    threads = [threading.Thread(target=flood) for _ in range(16)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert time.monotonic() - started < 30
    assert len(sent) == 16 and max(sent) < 8 * 1024 * 1024, sent  # cut off early, not read to the end
    grown_mib = (small.rss_kib() - before) / 1024
    assert grown_mib < 32, f"the server grew by {grown_mib:.0f} MiB"
    assert healthy(small.port)


# --- item 2: slow and idle connections, the connection cap ----------------------------------------------------
def test_slow_and_idle_connections_are_closed_and_clients_are_served_meanwhile(small: Served) -> None:
    """The report: 200 slowloris connections were all open after 30 s, idle ones after 75 s, and under a
    256-descriptor limit 300 idle connections locked every new client out."""
    socks: list[tuple[str, socket.socket]] = []
    try:
        for i in range(360):
            sock = socket.create_connection(("127.0.0.1", small.port), timeout=5)
            kind = ("idle", "half-line", "half-header")[i % 3]
            if kind == "half-line":
                sock.sendall(b"GET /heal")
            elif kind == "half-header":
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append((kind, sock))
        opened = time.monotonic()
        # meanwhile (the slow ones all still within their head deadline), a normal client is served
        with small.client() as http:
            assert http.get("/healthz").status_code == 200
            published = http.post("/v1/queue/publish", json={"queue": "jobs", "payload": {"n": 1}})
            assert published.status_code == 200, published.text
            consumed = http.post("/v1/queue/consume", json={"queue": "jobs"}).json()["messages"]
            assert [m["message_id"] for m in consumed] == [published.json()["message_id"]]
            assert http.post("/v1/queue/ack", json={"queue": "jobs", "message_id": consumed[0]["message_id"]}
                             ).status_code == 200
        assert time.monotonic() - opened < HEADER_TIMEOUT
        # trickling a byte now and then does not extend a head's deadline
        deadline = opened + HEADER_TIMEOUT + 3
        while time.monotonic() < deadline and not all(closed_by_peer(s) for _, s in socks):
            for kind, sock in socks:
                if kind == "half-header":
                    with contextlib.suppress(OSError):
                        sock.send(b"a")
            time.sleep(0.25)
        still_open = [kind for kind, sock in socks if not closed_by_peer(sock)]
        assert still_open == [], f"{len(still_open)} connections still open: {sorted(set(still_open))}"
        assert time.monotonic() - opened < HEADER_TIMEOUT + 3
    finally:
        for _, sock in socks:
            sock.close()
    assert healthy(small.port)
    log = small.server.stderr()
    assert f"BROKER_MAX_CONNECTIONS=2048 lowered to {NOFILE - 64}" in log
    assert "connection limit reached" in log
    assert "Traceback" not in log


def test_at_the_cap_a_busy_server_answers_503_and_an_idle_connection_makes_room(
    node: RedisNode, tmp_path: Path
) -> None:
    served = start(node, tmp_path, BROKER_MAX_CONNECTIONS="16")
    try:
        consume = request("POST", "/v1/queue/consume", f"Authorization: Bearer {served.key}",
                          "Content-Type: application/json", body=b'{"queue":"jobs","wait_seconds":3}')
        busy = []
        for _ in range(16):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=10)
            sock.sendall(consume)
            busy.append(sock)
        time.sleep(0.5)  # all 16 are waiting long polls now
        refused = exchange(served.port, request("GET", "/healthz"))
        error = refused.error()
        assert (refused.status, error["code"], refused.headers["retry-after"]) == (503, "UNAVAILABLE", "1")
        assert "maximum of connections" in error["message"]
        for sock in busy:
            answer = read_answer(sock)
            assert answer.status == 200 and json.loads(answer.body) == {"messages": []}
            sock.close()

        idle = [socket.create_connection(("127.0.0.1", served.port), timeout=10) for _ in range(16)]
        try:
            time.sleep(0.2)
            assert exchange(served.port, request("GET", "/healthz")).status == 200  # the oldest idle one made room
            assert closed_by_peer(idle[0])
        finally:
            for sock in idle:
                sock.close()
    finally:
        served.server.stop()


# --- items 6 and 7: redirects, Authorization ---------------------------------------------------------------
@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/queue/publish/"), ("GET", "/v1/queue/list/"),
                                              ("GET", "/healthz/")])
def test_a_trailing_slash_is_404_and_nothing_redirects(small: Served, method: str, path: str) -> None:
    answer = exchange(small.port, request(method, path, f"Authorization: Bearer {small.key}",
                                          "Content-Type: application/json", body=b'{"queue":"jobs","payload":1}',
                                          host="evil.example"))
    assert answer.status == 404 and answer.error()["code"] == "NOT_FOUND"
    assert "location" not in answer.headers


def test_two_authorization_headers_are_refused_on_every_path(small: Served) -> None:
    right, wrong = f"Authorization: Bearer {small.key}", "Authorization: Bearer wrong-key-0123456789"
    body = b'{"queue":"jobs","payload":{"stored":"no"}}'
    for pair in ([wrong, right], [right, wrong]):
        publish = exchange(small.port, request("POST", "/v1/queue/publish", *pair, "Content-Type: application/json",
                                               body=body))
        stats = exchange(small.port, request("GET", "/v1/queue/stats/jobs", *pair))
        assert (publish.status, stats.status) == (401, 401)
        assert publish.error()["message"] == stats.error()["message"]
    with small.client() as http:
        assert http.post("/v1/queue/consume", json={"queue": "jobs"}).json() == {"messages": []}  # nothing stored


# --- item 3: payloads over the wire ------------------------------------------------------------------------
def test_an_invalid_payload_is_400_and_logs_no_traceback(small: Served) -> None:
    auth = (f"Authorization: Bearer {small.key}", "Content-Type: application/json")
    for body in (b'{"queue":"jobs","payload":"\xff"}', b'{"queue": "jobs", "payload": {"n": 1e400}}',
                 b'{"queue": "jobs", "payload": "\xff "}'):
        answer = exchange(small.port, request("POST", "/v1/queue/publish", *auth, body=body))
        assert answer.status == 400 and answer.error()["field"] == "payload", answer
    assert "Traceback" not in small.server.stderr()


# --- both protocols (httptools, and h11 where httptools is missing), served by uvicorn in process ------------
IN_PROCESS = ConnectionLimits(max_header_bytes=4096, header_timeout=1.0, max_connections=8)


async def tiny_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the body; ``/slow`` answers after 1.5 s (longer than the head deadline), anything else at once."""
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/slow":
        await asyncio.sleep(1.5)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"11")]})
    await send({"type": "http.response.body", "body": b'{"ok":true}'})


@pytest.fixture(params=["httptools", "h11"])
def protocol_port(request: pytest.FixtureRequest) -> Iterator[int]:
    cls = HttpToolsServer if request.param == "httptools" else H11Server
    config = uvicorn.Config(tiny_app, host="127.0.0.1", port=free_port(), http=cls.with_limits(IN_PROCESS),
                            lifespan="off", log_level="warning", loop="asyncio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, what="the in-process server starting")
    yield config.port
    server.should_exit = True
    thread.join(10)


def test_each_protocol_caps_request_heads(protocol_port: int) -> None:
    assert exchange(protocol_port, request("GET", "/", "X-Big: " + "a" * 3000)).status == 200
    complete = exchange(protocol_port, request("GET", "/", "X-Big: " + "a" * 5000))
    assert complete.status == 431 and complete.error()["code"] == "HEADERS_TOO_LARGE"
    with socket.create_connection(("127.0.0.1", protocol_port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000)
        assert read_answer(sock).status == 431


def test_each_protocol_keeps_keep_alive_and_pipelining(protocol_port: int) -> None:
    one = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", protocol_port), timeout=10) as sock:
        sock.sendall(one)
        assert read_answer(sock).status == 200
        sock.sendall(one + one)  # pipelined
        data = b""
        while data.count(b'{"ok":true}') < 2:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
        assert data.count(b"HTTP/1.1 200 OK\r\n") == 2


def test_each_protocol_closes_connections_that_do_not_send_a_head_in_time(protocol_port: int) -> None:
    idle = socket.create_connection(("127.0.0.1", protocol_port), timeout=10)
    slow = socket.create_connection(("127.0.0.1", protocol_port), timeout=10)
    slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a")
    busy = socket.create_connection(("127.0.0.1", protocol_port), timeout=10)
    busy.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")  # served for longer than the head deadline
    try:
        started = time.monotonic()
        assert read_answer(busy).status == 200  # a request in progress is not cut off
        assert closed_by_peer(idle) and closed_by_peer(slow)
        assert not closed_by_peer(busy)  # its deadline restarted at the response
        wait_until(lambda: closed_by_peer(busy), 3, what="the idle keep-alive connection being closed")
        assert time.monotonic() - started < 1.5 + 1.0 + 1.0
    finally:
        for sock in (idle, slow, busy):
            sock.close()


def test_each_protocol_caps_connections(protocol_port: int) -> None:
    idle = [socket.create_connection(("127.0.0.1", protocol_port), timeout=10) for _ in range(8)]
    try:
        time.sleep(0.1)
        assert exchange(protocol_port, request("GET", "/")).status == 200
        assert closed_by_peer(idle[0]) and not closed_by_peer(idle[1])  # the oldest idle one made room
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.1)
    busy = []
    try:
        for _ in range(8):
            sock = socket.create_connection(("127.0.0.1", protocol_port), timeout=10)
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            busy.append(sock)
        time.sleep(0.2)
        refused = exchange(protocol_port, request("GET", "/"))
        assert refused.status == 503 and refused.error()["code"] == "UNAVAILABLE"
        assert refused.headers["retry-after"] == "1"
        assert [read_answer(sock).status for sock in busy] == [200] * 8
    finally:
        for sock in busy:
            sock.close()
