"""A store that comes back without its data is detected and refused loudly, never silently served: the
instance marker (broker/store/instance.py), ``/readyz``, the 503s, and the operator's ways out (``broker store
accept-reset``, a restart, or the data coming back)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis.asyncio as aioredis
from loadgen import shape_problem
from support import clean_env, eventually, wait_until
from support.fleet import ApiServer, Fleet, RedisNode

from broker import errors
from broker.store.connection import connect
from broker.store.failures import StoreLostError
from broker.store.instance import ORIGIN_ACCEPTED, InstanceGuard, Marker, accept_reset, read_marker
from broker.store.keys import INSTANCE


@pytest.fixture
def served(fleet: Fleet) -> Iterator[tuple[RedisNode, ApiServer, httpx.Client]]:
    key = f"lost-{uuid.uuid4().hex}"
    node = fleet.redis(name="store")
    server = fleet.serve(node.url, f"lost:{key}")
    http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    yield node, server, http
    http.close()


def store_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "broker.cli.store", "store", *args, "--redis-url", url],
                          env=clean_env(), capture_output=True, text=True, timeout=60)


def is_lost(response: httpx.Response) -> bool:
    return response.status_code == 503 and "lost its data" in response.json()["error"]["message"]


def lose_the_data(node: RedisNode) -> None:
    node.kill(signal.SIGKILL)
    node.wipe()
    node.start()


def test_a_store_that_came_back_empty_is_refused_until_an_operator_accepts_it(
    served: tuple[RedisNode, ApiServer, httpx.Client],
) -> None:
    node, server, http = served
    assert http.post("/v1/queue/create", json={"name": "work"}).status_code == 200
    for n in range(3):
        assert http.post("/v1/queue/publish", json={"queue": "work", "payload": n}).status_code == 200

    lose_the_data(node)
    wait_until(lambda: is_lost(http.get("/readyz")), 3.5, what="/readyz reporting the loss")
    for method, path, body in [("POST", "/v1/queue/publish", {"queue": "work", "payload": 1}),
                               ("POST", "/v1/queue/consume", {"queue": "work"}),
                               ("POST", "/v1/queue/create", {"name": "work"}),
                               ("GET", "/v1/queue/list", None)]:
        response = http.request(method, path, json=body)
        assert is_lost(response), (path, response.status_code, response.text)
        assert shape_problem(response) == "" and response.json()["error"]["code"] == "UNAVAILABLE"
    time.sleep(2.5)  # it stays refused: nothing is served silently
    assert is_lost(http.get("/readyz")) and is_lost(http.get("/v1/queue/list"))
    with node.client() as client:
        assert client.dbsize() == 0, client.keys()  # nothing was written to the empty store
    assert "STORE LOST ITS DATA" in server.stderr()

    status = store_cli(node.url, "status")
    assert status.returncode == 0 and "identity: none" in status.stdout, status
    accepted = store_cli(node.url, "accept-reset")
    assert accepted.returncode == 0, accepted.stderr
    assert "store identity was none" in accepted.stderr
    wait_until(lambda: http.get("/readyz").status_code == 200, 3, what="serving after accept-reset")
    missing = http.post("/v1/queue/publish", json={"queue": "work", "payload": 1})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "QUEUE_NOT_FOUND"
    assert http.post("/v1/queue/create", json={"name": "work"}).status_code == 200
    assert http.post("/v1/queue/publish", json={"queue": "work", "payload": 1}).status_code == 200
    assert server.starts == 1 and server.proc is not None and server.proc.poll() is None
    assert "serving again" in server.stderr()


def test_data_that_comes_back_is_served_again_without_acknowledgement(
    served: tuple[RedisNode, ApiServer, httpx.Client],
) -> None:
    node, _server, http = served
    assert http.post("/v1/queue/create", json={"name": "work"}).status_code == 200
    kept = http.post("/v1/queue/publish", json={"queue": "work", "payload": "kept"}).json()["message_id"]
    node.stop()  # a clean stop: the AOF is complete
    backup = node.directory.parent / "backup"
    shutil.copytree(node.directory / "appendonlydir", backup)
    node.start()
    wait_until(lambda: http.get("/readyz").status_code == 200, 5, what="ready after a clean restart")

    lose_the_data(node)
    wait_until(lambda: is_lost(http.get("/readyz")), 5, what="the loss detected")

    node.kill(signal.SIGKILL)
    node.wipe()
    shutil.copytree(backup, node.directory / "appendonlydir")
    node.start()
    wait_until(lambda: http.get("/readyz").status_code == 200, 5, what="ready once the data is back")
    consumed = http.post("/v1/queue/consume", json={"queue": "work"}).json()["messages"]
    assert [m["message_id"] for m in consumed] == [kept]


def test_restarting_the_api_process_accepts_the_store_as_it_is(
    served: tuple[RedisNode, ApiServer, httpx.Client],
) -> None:
    node, server, http = served
    assert http.post("/v1/queue/create", json={"name": "work"}).status_code == 200
    lose_the_data(node)
    wait_until(lambda: is_lost(http.get("/readyz")), 5, what="the loss detected")
    assert server.stop() == 0
    server.start()
    assert http.get("/readyz").status_code == 200
    assert http.post("/v1/queue/create", json={"name": "work"}).status_code == 200


# --- the guard in process --------------------------------------------------------------------------
def test_the_rules_of_the_marker() -> None:
    guard = InstanceGuard(None)
    assert guard.evaluate(Marker(id="a", created_ms=10)) is True  # nothing known yet: nothing to compare
    guard.marker = Marker(id="a", created_ms=10)
    assert guard.evaluate(Marker(id="a", created_ms=10)) and not guard.lost
    assert not guard.evaluate(None) and guard.lost
    with pytest.raises(errors.Unavailable, match="lost its data"):
        guard.admit()
    assert guard.evaluate(Marker(id="a", created_ms=10)) and not guard.lost  # the data came back
    assert not guard.evaluate(Marker(id="b", created_ms=20)) and guard.lost  # another process's fresh marker
    assert not guard.evaluate(Marker(id="c", created_ms=5, origin=ORIGIN_ACCEPTED))  # an old backup's
    assert guard.evaluate(Marker(id="d", created_ms=30, origin=ORIGIN_ACCEPTED)) and not guard.lost
    assert guard.marker is not None and guard.marker.id == "d"
    guard.admit()


async def test_the_connect_hook_refuses_a_store_that_lost_its_data(fleet: Fleet) -> None:
    node = fleet.redis(name="store")
    client = connect(node.url)
    guard = InstanceGuard(client, hook=True)
    admin = aioredis.Redis(port=node.port)
    try:
        await guard.start()
        assert guard.marker is not None and (await read_marker(admin)) == guard.marker
        await client.set("k", "v")
        await admin.delete(INSTANCE)  # the store "lost" its data
        await client.connection_pool.disconnect()  # the next command needs a new connection
        with pytest.raises(StoreLostError):
            await client.get("k")
        assert guard.lost
        with pytest.raises(errors.Unavailable, match="lost its data"):
            await guard.ready()
        await accept_reset(admin)
        await guard.check()
        assert not guard.lost
        assert await client.get("k") == b"v"
    finally:
        await guard.stop()
        await client.aclose()
        await admin.aclose()


async def test_the_gate_closes_after_failed_checks_and_opens_when_the_store_answers(fleet: Fleet) -> None:
    node = fleet.redis(name="store")
    client = connect(node.url)
    guard = InstanceGuard(client, hook=True, check_interval=0.2)
    try:
        await guard.start()
        guard.admit()
        await asyncio.to_thread(node.kill, signal.SIGKILL)

        def closed() -> str | None:
            try:
                guard.admit()
            except errors.Unavailable as exc:
                return exc.message
            return None

        assert "does not answer" in await eventually(closed, 5, what="the gate closing")
        await asyncio.to_thread(node.start)
        await eventually(lambda: guard.failures == 0, 5, what="a check passing again")
        guard.admit()
        assert await client.ping()
    finally:
        await guard.stop()
        await client.aclose()
