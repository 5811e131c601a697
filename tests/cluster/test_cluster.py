"""The service on a real three-node Redis Cluster: every project's keys share one slot, scripts (which
derive a dead-letter queue's keys inside the slot) run unchanged, long polls wake through pub/sub, and
the durability check reads every primary."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from support import eventually, free_port, project_pattern, redis_ready, stop_process, wait_until

from broker.http.app import create_app
from broker.settings import Settings
from broker.store.connection import connect
from broker.store.durability import check_durability
from broker.store.keys import ProjectKeys

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def cluster_port() -> int:
    """A free port a cluster node can use: Redis needs port + 10000 for its cluster bus."""
    while True:
        port = free_port()
        if port <= 55535:
            return port


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    ports = [cluster_port() for _ in range(3)]
    procs = []
    for port in ports:
        data: Path = tmp_path_factory.mktemp(f"node{port}")
        procs.append(
            subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", "nodes.conf", "--dir", str(data), "--save", "",
                 "--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction"],
                stdout=subprocess.DEVNULL,
            )
        )
    try:
        for port in ports:
            wait_until(lambda port=port: redis_ready(port), 10, what=f"cluster node on port {port} starting")
        subprocess.run(
            ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports], "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL,
        )
        wait_until(lambda: all(_state(p) == "ok" for p in ports), 15, interval=0.1, what="the cluster forming")
        yield ports
    finally:
        for proc in procs:
            stop_process(proc, 10)


def _state(port: int) -> str:
    with redis.Redis(host="127.0.0.1", port=port) as node:
        return str(node.cluster("info")["cluster_state"])


async def spread_projects(client: Any, count: int) -> list[str]:
    """``count`` new project names, the first ones on different primaries (as many as there are), so that the
    tests cover every node whatever names uuid4 gives."""
    await client.initialize()
    nodes = len(client.get_primaries())
    projects: list[str] = []
    used: set[int] = set()
    while len(projects) < count:
        project = f"c{len(projects)}-{uuid.uuid4().hex[:8]}"
        port = client.get_node_from_key(ProjectKeys(project).queues).port
        if len(used) < min(count, nodes) and port in used:
            continue  # another node is still missing one
        used.add(port)
        projects.append(project)
    return projects


@pytest.fixture
async def apis(cluster: list[int]) -> AsyncIterator[list[Any]]:
    client = connect(f"redis+cluster://127.0.0.1:{cluster[0]}")
    projects = await spread_projects(client, 4)
    keys = tuple((p, f"key-{p}") for p in projects)
    app = create_app(Settings(redis_url="redis+cluster://unused", api_keys=keys, run_workers=False), redis=client)
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = dict(state)
            await app(scope, receive, send)

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=with_state), base_url="http://t") as http:
            yield [(http, {"Authorization": f"Bearer {key}"}, project) for project, key in keys]
    await client.aclose()


async def _ok(http: httpx.AsyncClient, headers: dict[str, str], method: str, path: str, body: Any = None) -> Any:
    response = await http.request(method, path, json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_lifecycle_on_every_node(apis: list[Any], cluster: list[int]) -> None:
    for http, headers, _project in apis:
        await _ok(http, headers, "POST", "/v1/queue/create", {"name": "dlq"})
        await _ok(http, headers, "POST", "/v1/queue/create",
                  {"name": "jobs", "dead_letter_queue": "dlq", "max_retries": 0, "enable_priority": True})
        await _ok(http, headers, "POST", "/v1/queue/publish_batch",
                  {"queue": "jobs", "messages": [{"payload": {"n": i}, "priority": i % 10} for i in range(20)]})
        got = await _ok(http, headers, "POST", "/v1/queue/consume", {"queue": "jobs", "max_messages": 20})
        assert [m["priority"] for m in got["messages"]] == sorted((i % 10 for i in range(20)), reverse=True)
        first, *rest = got["messages"]
        await _ok(http, headers, "POST", "/v1/queue/nack",
                  {"queue": "jobs", "message_id": first["message_id"], "requeue": False})
        receipts = [{"message_id": m["message_id"], "receipt": m["receipt"]} for m in rest]
        await _ok(http, headers, "POST", "/v1/queue/ack_batch", {"queue": "jobs", "messages": receipts})
        stats = await _ok(http, headers, "GET", "/v1/queue/stats/jobs")
        assert (stats["available"], stats["in_flight"], stats["dlq"]) == (0, 0, 1)
        dead = await _ok(http, headers, "GET", "/v1/queue/dlq/list/jobs")
        assert [d["message_id"] for d in dead["items"]] == [first["message_id"]]
        assert (await _ok(http, headers, "POST", "/v1/queue/dlq/redrive/jobs", {}))["redriven"] == 1
        again = await _ok(http, headers, "POST", "/v1/queue/consume", {"queue": "jobs"})
        assert again["messages"][0]["message_id"] == first["message_id"]

    # Every key of a project sits in one slot; the projects (spread_projects) are on every node.
    nodes_used = set()
    for _http, _headers, project in apis:
        pattern = project_pattern(project)
        slots = set()
        for port in cluster:
            node = redis.Redis(host="127.0.0.1", port=port)
            keys = list(node.scan_iter(match=pattern, count=1000))
            if keys:
                nodes_used.add(port)
            slots |= {node.execute_command("CLUSTER KEYSLOT", k) for k in keys}
        assert len(slots) == 1, (project, slots)
    assert nodes_used == set(cluster)


def _listeners(ports: list[int], channel: str) -> int:
    """Subscribers of ``channel`` on every node (each node counts the clients connected to it)."""
    total = 0
    for port in ports:
        with redis.Redis(host="127.0.0.1", port=port) as node:
            [(_channel, count)] = node.pubsub_numsub(channel)
            total += int(count)
    return total


async def test_long_poll_wakes_on_cluster(apis: list[Any], cluster: list[int]) -> None:
    http, headers, project = apis[0]
    await _ok(http, headers, "POST", "/v1/queue/create", {"name": "waiting"})

    async def publish_later() -> float:
        # Once the waiting consume has subscribed (before that, the publish could not be what wakes it).
        await eventually(lambda: _listeners(cluster, ProjectKeys(project).notify), 5, what="the consume waiting")
        await _ok(http, headers, "POST", "/v1/queue/publish", {"queue": "waiting", "payload": 1})
        return time.monotonic()

    publisher = asyncio.create_task(publish_later())
    got = await _ok(http, headers, "POST", "/v1/queue/consume", {"queue": "waiting", "wait_seconds": 10})
    woke = time.monotonic()
    published = await publisher
    assert len(got["messages"]) == 1
    assert woke - published < 1.0  # the safety poll is 2 s: this wake came from the notification


async def test_durability_check_reads_every_primary(cluster: list[int]) -> None:
    client = connect(f"redis+cluster://127.0.0.1:{cluster[0]}")
    try:
        assert (await check_durability(client)).ok
        node = redis.Redis(host="127.0.0.1", port=cluster[1])
        node.config_set("maxmemory-policy", "allkeys-lru")
        try:
            report = await check_durability(client)
            assert not report.ok
            assert any(f"127.0.0.1:{cluster[1]}" in p and "maxmemory-policy" in p for p in report.problems)
        finally:
            node.config_set("maxmemory-policy", "noeviction")
    finally:
        await client.aclose()
