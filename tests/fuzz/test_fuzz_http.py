"""Bad input at the byte level: bodies that are huge, lie about their length or nest without end are refused
with bounded memory; and generated raw HTTP requests against a real ``broker serve`` (uvicorn's own parser
in front) never get a 5xx, never kill the server and do not grow its memory."""

from __future__ import annotations

import json
import socket
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzzkit import Answer, call, contract_problems
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import TEMPLATES, bodies, resolve
from support import project_snapshot
from support.fleet import ApiServer, Fleet

MiB = 1024 * 1024


async def _post(world: Any, path: str, chunks: Iterator[bytes] | list[bytes], length: int | None) -> Answer:
    headers = [(b"authorization", f"Bearer {world.key}".encode()), (b"content-type", b"application/json")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return await call(world.app, "POST", path.encode(), headers=headers, chunks=chunks, state=world.state)


def _peak(during: Any) -> Any:
    """Run the coroutine ``during`` under tracemalloc; (result, peak bytes allocated)."""

    async def run() -> tuple[Any, int]:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            result = await during
            return result, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    return run()


def _stream(total: int, piece: int = 64 * 1024) -> Iterator[bytes]:
    block = b"x" * piece
    sent = 0
    while sent < total:
        yield block
        sent += piece


@pytest.mark.parametrize("declared", [None, 50 * MiB, 10])
async def test_a_50_mib_body_is_refused_while_reading_with_bounded_memory(world: Any, declared: int | None) -> None:
    before = await project_snapshot(world.redis, world.project)
    answer, peak = await _peak(_post(world, "/v1/queue/publish_batch", _stream(50 * MiB), declared))
    assert answer.status == 413 and not contract_problems(answer), answer.body
    assert answer.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert peak < 16 * MiB, f"peak {peak / MiB:.1f} MiB while refusing a 50 MiB body"
    assert await project_snapshot(world.redis, world.project) == before


async def test_a_huge_declared_length_is_refused_before_reading(world: Any) -> None:
    read: list[int] = []

    def chunks() -> Iterator[bytes]:
        read.append(1)
        yield b"{}"

    answer = await _post(world, "/v1/queue/publish", chunks(), 10**18)
    assert answer.status == 413 and not contract_problems(answer)
    assert not read, "the body was read although its declared length was over the limit"


@pytest.mark.parametrize("depth", [10_000, 1_000_000])
async def test_deep_nesting_is_a_400_with_bounded_memory(world: Any, depth: int) -> None:
    body = b'{"queue":"q1","payload":' + b"[" * depth + b"]" * depth + b"}"
    answer, peak = await _peak(_post(world, "/v1/queue/publish", [body], len(body)))
    assert answer.status in (400, 413) and not contract_problems(answer), answer.body[:200]
    assert peak < 3 * len(body) + 4 * MiB


async def test_many_bad_requests_do_not_grow_memory(world: Any) -> None:
    bad = [b"{", b"\xff\xfe", b'{"queue":"q1","payload":null}', b"[" * 5000, b'{"queue":"' + b"q" * 100 + b'"}']

    async def burst() -> None:
        for _ in range(200):
            for body in bad:
                answer = await _post(world, "/v1/queue/publish", [body], len(body))
                assert answer.status == 400

    await burst()  # warm up (caches, decoders)
    _, peak = await _peak(burst())
    tracemalloc.start()
    try:
        await burst()
        retained = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert retained < 2 * MiB and peak < 8 * MiB, (retained, peak)


# --- a real server ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, str]]:
    fleet = Fleet(tmp_path_factory.mktemp("fuzz-http"))
    try:
        node = fleet.redis(name="store")
        key = f"fz-{uuid.uuid4().hex}"
        server = fleet.serve(node.url, f"fz:{key}", "--no-workers", BROKER_PUSH_ALLOW_PRIVATE="1")
        yield server, key
    finally:
        fleet.stop_all()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def raw_exchange(port: int, request: bytes, timeout: float = 10) -> bytes:
    """Send ``request`` and read until the server closes (the requests say ``Connection: close``). A server
    that answers before reading a whole body may reset the connection: ``<reset>`` is appended then."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        received = b""
        try:
            sock.sendall(request)
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return received
                received += chunk
        except TimeoutError:
            return received + b"<timeout>"
        except (ConnectionResetError, BrokenPipeError):
            return received + b"<reset>"


def parse(raw: bytes) -> Answer:
    while raw.startswith(b"HTTP/1.1 100 "):  # an interim "100 Continue" (the request said Expect)
        raw = raw.partition(b"\r\n\r\n")[2]
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) >= 2 else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return Answer(status, headers, body)


header_noise = st.lists(st.tuples(
    st.sampled_from([b"Content-Type", b"Authorization", b"X-Request-Id", b"Accept", b"X-Junk", b"Expect"]),
    st.one_of(st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
              st.sampled_from([b"application/json", b"text/plain", b"Bearer nope", b"100-continue", b"\xff"]))),
    max_size=3)


@given(data=st.data())
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_raw_requests_to_a_real_server(real_server: tuple[ApiServer, str], data: st.DataObject) -> None:
    server, key = real_server
    assert server.proc is not None
    method, template = data.draw(st.sampled_from(TEMPLATES))
    path = template.replace("{queue}", data.draw(st.sampled_from(["q1", "nope", "%ff", "a%20b", "x" * 100])))
    content = data.draw(bodies(template))
    body = content if isinstance(content, bytes) else json.dumps(resolve(content, _NoWorld())).encode()
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: test", b"Connection: close",
             f"Authorization: Bearer {key}".encode(), f"Content-Length: {len(body)}".encode()]
    lines += [name + b": " + value for name, value in data.draw(header_noise)]
    raw = raw_exchange(server.port, b"\r\n".join(lines) + b"\r\n\r\n" + body)
    assert not raw.endswith(b"<timeout>"), raw[:300]
    if raw.endswith(b"<reset>") and not raw.startswith(b"HTTP/"):
        # The answer was lost to the reset of a connection whose body was refused before it was read whole.
        assert len(body) > 65536, (raw[:300], body[:300])
        assert server.proc.poll() is None
        return
    assert raw, "the server closed the connection without an answer"
    answer = parse(raw.removesuffix(b"<reset>"))
    assert answer.status and answer.status < 500, raw[:500]
    if "x-request-id" in answer.headers:  # answered by the application (not by uvicorn's own parser)
        problems = contract_problems(answer) if answer.status >= 400 else []
        assert not problems, (problems, raw[:500])
    else:
        assert answer.status == 400, raw[:500]  # uvicorn refusing a malformed request
    assert server.proc.poll() is None, "the server died"


def test_the_real_server_memory_stays_bounded(real_server: tuple[ApiServer, str]) -> None:
    server, key = real_server
    assert server.proc is not None
    auth = f"Authorization: Bearer {key}\r\n".encode()
    junk = [b"POST /v1/queue/publish HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + auth
            + b"Content-Length: 999999999999\r\n\r\n{}",
            b"POST /v1/queue/publish HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + auth
            + b"Content-Length: 6000\r\n\r\n" + b"[" * 6000,
            b"GET /v1/queue/get/%ff HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + auth + b"\r\n",
            b"GET /\xff HTTP/1.1\r\nHost: t\r\n\r\n"]
    for _ in range(50):  # warm up
        for request in junk:
            raw_exchange(server.port, request)
    before = rss_kib(server.proc.pid)
    for _ in range(300):
        for request in junk:
            assert parse(raw_exchange(server.port, request)).status in (400, 404, 413)
    grown = rss_kib(server.proc.pid) - before
    assert grown < 20 * 1024, f"RSS grew by {grown} KiB over 1200 bad requests"
    assert server.proc.poll() is None


class _NoWorld:
    """Refs resolve to ids that do not exist on the real server."""

    def __init__(self) -> None:
        self.message_ids: list[str] = []
        self.receipts: list[str] = []
