"""Many processes on one store: two ``broker serve --workers 2 --no-workers`` and two ``broker worker``
processes on one durable redis-server. Calls of one message's life go to different API processes; long polls
are woken by a publish through the other API; push deliveries (which only the worker processes run here)
reach the receiver; each worker checks the store's identity marker as the API does; and a fault run (API,
worker and Redis SIGKILLed under load from both APIs) passes the fault suite's queue checker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from loadgen import History, Workload, check
from support import alive, broker_command, clean_env, eventually, wait_until
from support.fleet import ApiServer, Fleet, RedisNode


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (``serve --workers 2`` runs its HTTP processes as children)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_api(api: ApiServer) -> None:
    """SIGKILL the serving process alone (a crashed supervisor, an OOM kill): its HTTP processes must not be
    left serving with nobody to stop them; they stop by themselves (broker/http/lifeline.py)."""
    assert api.proc is not None
    below = descendants(api.proc.pid)
    assert below, "serve --workers 2 has no child processes"
    api.kill(signal.SIGKILL)
    wait_until(lambda: not any(alive(pid) for pid in below), 30, what="the killed API's HTTP processes exiting")


@dataclass
class Workers:
    fleet: Fleet
    redis_url: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, index: int) -> subprocess.Popen[bytes]:
        log = self.fleet.workdir / f"worker-{index}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                broker_command("worker"), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=clean_env(BROKER_REDIS_URL=self.redis_url, BROKER_PUSH_ALLOW_PRIVATE="1", BROKER_LOG_LEVEL="info"),
                cwd=self.fleet.workdir,
            )
        self.fleet.others.append(proc)
        if index < len(self.procs):
            self.procs[index] = proc
        else:
            self.procs.append(proc)
        return proc

    def log(self, index: int) -> str:
        return (self.fleet.workdir / f"worker-{index}.log").read_text(errors="replace")


@dataclass
class Deployment:
    node: RedisNode
    apis: list[ApiServer]
    workers: Workers
    key: str

    def http(self, index: int, timeout: float = 30) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.apis[index].url, headers={"Authorization": f"Bearer {self.key}"},
                                 timeout=timeout)


@pytest.fixture
def deployment(fleet: Fleet) -> Iterator[Deployment]:
    node = fleet.redis(name="store")
    key = f"many-{uuid.uuid4().hex}"
    apis = [fleet.serve(node.url, f"many:{key}", "--workers", "2", "--no-workers", BROKER_PUSH_ALLOW_PRIVATE="1")
            for _ in range(2)]
    workers = Workers(fleet, node.url)
    for i in range(2):
        workers.start(i)
    for i in range(2):
        wait_until(lambda i=i: "store identity" in workers.log(i) or workers.procs[i].poll() is not None, 30,
                   what=f"worker {i} starting")
        assert workers.procs[i].poll() is None, workers.log(i)
    deployment = Deployment(node, apis, workers, key)
    children = {pid for api in apis if api.proc for pid in descendants(api.proc.pid)}
    yield deployment
    for api in apis:  # the restarted ones too
        if api.proc is not None:
            children |= set(descendants(api.proc.pid))
    fleet.stop_all()
    wait_until(lambda: not any(alive(pid) for pid in children), 30, what="every API's HTTP processes exiting")


async def ok(http: httpx.AsyncClient, method: str, path: str, body: Any = None) -> Any:
    response = await http.request(method, path, json=body)
    assert response.status_code == 200, (path, response.status_code, response.text)
    return response.json()


class Receiver:
    """A plain HTTP endpoint on loopback that answers 200 to every push and records its body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ValueError):
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                           if line.lower().startswith("content-length:")), 0)
            self.bodies.append(json.loads(await reader.readexactly(length)))
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            await writer.drain()
        writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_two_apis_and_two_workers_serve_one_store(deployment: Deployment) -> None:
    async with deployment.http(0) as one, deployment.http(1) as two:
        await ok(one, "POST", "/v1/queue/create", {"name": "jobs", "visibility_timeout_default": 1})
        assert (await ok(two, "GET", "/v1/queue/stats/jobs"))["available"] == 0
        # A message's life across both APIs: published on one, leased on the other, its lease ending (so it is
        # delivered again through the first), acked on the second.
        published = await ok(one, "POST", "/v1/queue/publish", {"queue": "jobs", "payload": {"n": 1}})
        first = (await ok(two, "POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 1}))["messages"]
        assert [m["message_id"] for m in first] == [published["message_id"]]
        again = await ok(one, "POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 1, "wait_seconds": 5})
        assert [m["attempts"] for m in again["messages"]] == [2]
        acked = await ok(two, "POST", "/v1/queue/ack", {"queue": "jobs", "message_id": published["message_id"],
                                                        "receipt": again["messages"][0]["receipt"]})
        assert acked["acked"] is True
        # A long poll on one API is woken by a publish on the other, well before its wait ends.
        started = time.monotonic()
        poll = asyncio.create_task(one.post("/v1/queue/consume", json={"queue": "jobs", "wait_seconds": 15}))
        await asyncio.sleep(0.5)
        await ok(two, "POST", "/v1/queue/publish", {"queue": "jobs", "payload": "wake"})
        woken = (await poll).json()["messages"]
        assert [m["payload"] for m in woken] == ["wake"] and time.monotonic() - started < 5
        # Push deliveries run only in the worker processes here (the APIs run --no-workers).
        receiver = Receiver()
        url = await receiver.start()
        try:
            await ok(one, "POST", "/v1/queue/create", {"name": "hooks"})
            await ok(two, "POST", "/v1/queue/push_subscribe/hooks", {"url": url})
            for n in range(5):
                await ok(one if n % 2 else two, "POST", "/v1/queue/publish", {"queue": "hooks", "payload": {"n": n}})

            async def delivered() -> bool:
                stats = await ok(one, "GET", "/v1/queue/stats/hooks")
                return len(receiver.bodies) >= 5 and stats["available"] == 0 and stats["in_flight"] == 0

            await eventually(delivered, 30, interval=0.2)
        finally:
            await receiver.close()
        payloads = sorted(json.dumps(b.get("payload")) for b in receiver.bodies)
        assert len(set(payloads)) == 5, receiver.bodies


async def test_the_http_processes_die_with_a_killed_serve(deployment: Deployment) -> None:
    """Even with requests in flight that would hold a graceful stop longer (long polls of 20 s on each HTTP
    process): an orphaned HTTP process ends ORPHAN_GRACE_SECONDS (10 s) after its serve went."""
    api = deployment.apis[0]
    assert api.proc is not None
    below = descendants(api.proc.pid)
    assert len(below) >= 2 and all(alive(pid) for pid in below), below
    async with deployment.http(0) as http:
        assert (await http.post("/v1/queue/create", json={"name": "idle"})).status_code == 200
        polls = [asyncio.create_task(http.post("/v1/queue/consume", json={"queue": "idle", "wait_seconds": 20}))
                 for _ in range(8)]
        await asyncio.sleep(1)  # the long polls are waiting, spread over the HTTP processes
        started = time.monotonic()
        api.kill(signal.SIGKILL)  # the supervisor alone: nothing stops its children for it
        await eventually(lambda: not any(alive(pid) for pid in below), 16,
                         what="the HTTP processes of a killed serve exiting")
        took = time.monotonic() - started
        for poll in polls:
            poll.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
    print(f"\nthe HTTP processes of a SIGKILLed serve (long polls in flight) were gone after {took:.2f} s")
    with pytest.raises(httpx.ConnectError):  # nothing serves on its port any more
        httpx.get(f"{api.url}/healthz", timeout=5)
    api.start()  # and the port can be served again


async def test_a_worker_checks_the_stores_identity(deployment: Deployment) -> None:
    workers = deployment.workers
    assert all(p.poll() is None for p in workers.procs)
    with deployment.node.client() as client:
        client.flushall()  # this test's own redis-server: the store "comes back empty"
    for i in range(2):
        wait_until(lambda i=i: "STORE LOST" in workers.log(i), 15, what=f"worker {i} noticing the lost store")
    assert all(p.poll() is None for p in workers.procs)  # it waits for an operator; it does not exit
    done = subprocess.run(broker_command("store", "accept-reset", "--redis-url", deployment.node.url),
                          env=clean_env(), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    for i in range(2):
        wait_until(lambda i=i: "serving again" in workers.log(i), 15, what=f"worker {i} accepting the reset")


async def test_a_fault_run_across_both_apis_and_workers(deployment: Deployment, fleet: Fleet) -> None:
    history = History()
    async with deployment.http(0) as http:
        await ok(http, "POST", "/v1/queue/create", {"name": "work", "max_retries": 1000})
    loads = [Workload(api.url, deployment.key, "work", history, publishers=2, consumers=2, visibility=3.0, seed=i,
                      run=f"api{i}") for i, api in enumerate(deployment.apis)]
    for load in loads:
        load.start()
    faults: list[str] = []
    try:
        for kind in ("api", "worker", "redis", "api", "worker"):
            await asyncio.sleep(2.5)
            if kind == "api":
                api = deployment.apis[len(faults) % 2]
                await asyncio.to_thread(kill_api, api)
                await asyncio.to_thread(api.start)
            elif kind == "worker":
                index = len(faults) % 2
                deployment.workers.procs[index].kill()
                deployment.workers.procs[index].wait(10)
                deployment.workers.start(index)
            else:
                await asyncio.to_thread(deployment.node.kill, signal.SIGKILL)
                await asyncio.sleep(1.0)
                await asyncio.to_thread(deployment.node.start)
            faults.append(kind)
        await asyncio.sleep(2.5)
        for load in loads:
            await load.stop_publishing()
        final = await loads[0].drain(30)
    finally:
        for load in loads:
            await load.stop()
    verdict = check(history)
    print(f"\nmany processes, faults {faults}: {verdict.summary()}")
    assert final is not None and final["available"] == final["in_flight"] == final["delayed"] == 0, final
    assert verdict.acknowledged > 0 and not verdict.lost and not verdict.never_delivered, verdict.summary()
    assert not verdict.unexpected and not verdict.corrupted and not verdict.double_stored, verdict.summary()
    assert not history.server_errors, history.server_errors[:10]
    assert not history.hangs, history.hangs[:10]
    assert all(p.poll() is None for p in deployment.workers.procs)
    for i in range(2):
        assert "STORE LOST" not in deployment.workers.log(i)
    for api in deployment.apis:
        assert "STORE LOST" not in api.stderr()

