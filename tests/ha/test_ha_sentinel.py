"""The service on a Sentinel-managed shard of real processes (a durable primary, a replica, three sentinels):
``redis+sentinel://`` URLs, the durability check on every node, replicated acknowledgement
(``BROKER_REPLICA_ACKS``) answering 503 when the replica does not confirm in time and a retry with the same
idempotency key then answering the first message id, and a failover (SIGKILL of the primary) that the
service rides out by itself: 503 meanwhile, never a hang, the same process serving again afterwards."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from support import eventually
from support.fleet import ApiServer, Fleet
from support.sentinels import SentinelShard

from broker.jobs.arq_worker import arq_redis_settings
from broker.sentinel_url import parse_sentinel_url
from broker.settings import ConfigError, Settings
from broker.store.connection import close_client, connect
from broker.store.durability import check_durability, redact_url


@pytest.fixture
def shard(fleet: Fleet) -> SentinelShard:
    return SentinelShard(fleet).start()


# ------------------------------------------------------------------------------------------ the URL


def test_sentinel_urls_are_read_and_malformed_ones_refused() -> None:
    url = "rediss+sentinel://app:s%40cret@10.0.0.1:26379,[::1]:26380/queue-primary/3?sentinel_password=sp&ssl_ca_certs=/ca"
    address = parse_sentinel_url(url)
    assert address.sentinels == (("10.0.0.1", 26379), ("::1", 26380))
    assert (address.master, address.db, address.username, address.password) == ("queue-primary", 3, "app", "s@cret")
    assert address.sentinel_password == "sp" and address.ssl and address.ssl_options == {"ssl_ca_certs": "/ca"}
    assert Settings.from_env({"BROKER_REDIS_URL": url}).redis_url == url
    shown = redact_url(url)
    assert "s%40cret" not in shown and "sp&" not in shown and "10.0.0.1:26379,[::1]:26380" in shown
    for bad, words in [
        ("redis+sentinel://127.0.0.1:26379", "master-name"),
        ("redis+sentinel://127.0.0.1/name", "host:port"),
        ("redis+sentinel://127.0.0.1:99999/name", "host:port"),
        ("redis+sentinel://127.0.0.1:26379/name/x", "not a number"),
        ("redis+sentinel://127.0.0.1:26379/name?sentinel_pasword=x", "unknown option"),
    ]:
        with pytest.raises(ConfigError, match=words):
            Settings.from_env({"BROKER_REDIS_URL": bad})
    for name, value in [("BROKER_REPLICA_ACKS", "17"), ("BROKER_REPLICA_ACKS", "x"),
                        ("BROKER_REPLICA_ACK_TIMEOUT_MS", "5")]:
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({name: value})
    acks = Settings.from_env({"BROKER_REPLICA_ACKS": "2", "BROKER_REPLICA_ACK_TIMEOUT_MS": "250"})
    assert (acks.replica_acks, acks.replica_ack_timeout_ms) == (2, 250)
    arq = arq_redis_settings("redis+sentinel://:pw@127.0.0.1:1,127.0.0.1:2/m/1")
    assert arq.sentinel and arq.host == [("127.0.0.1", 1), ("127.0.0.1", 2)]
    assert (arq.sentinel_master, arq.database, arq.password) == ("m", 1, "pw")


# ------------------------------------------------------------------------------- on a real shard


async def test_the_durability_check_reads_the_primary_and_the_replica(shard: SentinelShard) -> None:
    client = connect(shard.url)
    try:
        report = await check_durability(client)
        assert report.ok and report.verified, report
        replica = shard.nodes[1]
        replica.client().config_set("appendonly", "no")  # a test-owned replica, not the shared Redis
        report = await check_durability(client)
        assert any(p.startswith(f"replica 127.0.0.1:{replica.port}: appendonly") for p in report.problems), report
    finally:
        await close_client(client)


def api(shard: SentinelShard, fleet: Fleet, **env: str) -> tuple[ApiServer, str]:
    key = f"ha-{uuid.uuid4().hex}"
    return fleet.serve(shard.url, f"ha:{key}", **env), key


async def test_replicated_acknowledgement_waits_for_the_replica(shard: SentinelShard, fleet: Fleet) -> None:
    server, key = api(shard, fleet, BROKER_REPLICA_ACKS="1", BROKER_REPLICA_ACK_TIMEOUT_MS="300")
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as http:
        assert (await http.post("/v1/queue/create", json={"name": "q"})).status_code == 200
        first = await http.post("/v1/queue/publish", json={"queue": "q", "payload": 1})
        assert first.status_code == 200, first.text
        replica = shard.nodes[1]
        assert replica.client().info("replication")["slave_repl_offset"] > 0

        replica.freeze()  # the replica stops confirming
        try:
            started = time.monotonic()
            body = {"queue": "q", "payload": 2, "idempotency_key": "k-2"}
            refused = await http.post("/v1/queue/publish", json=body)
            took = time.monotonic() - started
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "UNAVAILABLE" and "replicas" in refused.json()["error"]["message"]
            assert refused.headers["Retry-After"]
            assert 0.25 <= took < 3, took
            # Reads and consumes still answer meanwhile; only acknowledged changes wait.
            stats = await http.get("/v1/queue/stats/q")
            assert stats.status_code == 200
        finally:
            replica.thaw()
        retried = await http.post("/v1/queue/publish", json=body)
        assert retried.status_code == 200, retried.text
        again = await http.post("/v1/queue/publish", json=body)
        assert again.json()["message_id"] == retried.json()["message_id"]
        stats = (await http.get("/v1/queue/stats/q")).json()
        assert stats["available"] == 2, stats  # the refused publish was stored once, not twice


async def test_a_failover_is_ridden_out_without_a_restart(shard: SentinelShard, fleet: Fleet) -> None:
    server, key = api(shard, fleet, BROKER_REPLICA_ACKS="1")
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as http:
        assert (await http.post("/v1/queue/create", json={"name": "q"})).status_code == 200
        published = (await http.post("/v1/queue/publish", json={"queue": "q", "payload": "before"})).json()
        statuses: list[int] = []
        slowest = 0.0

        async def probe() -> None:
            nonlocal slowest
            while True:
                started = time.monotonic()
                r = await http.post("/v1/queue/publish", json={"queue": "probe-missing", "payload": 0})
                slowest = max(slowest, time.monotonic() - started)
                statuses.append(r.status_code)
                await asyncio.sleep(0.05)

        task = asyncio.create_task(probe())
        try:
            timings = await asyncio.to_thread(shard.failover)
        finally:
            task.cancel()
        assert set(statuses) <= {404, 503}, statuses  # the probe's queue does not exist: 404 when served
        assert 503 in statuses and slowest < 5, (statuses, slowest, timings)

        async def ready() -> bool:
            return (await http.get("/readyz")).status_code == 200

        await eventually(ready, 30, interval=0.1)
        consumed = (await http.post("/v1/queue/consume", json={"queue": "q", "max_messages": 10})).json()
        assert [m["message_id"] for m in consumed["messages"]] == [published["message_id"]]
        after = await http.post("/v1/queue/publish", json={"queue": "q", "payload": "after"})
        assert after.status_code == 200, after.text
    assert server.starts == 1 and server.proc is not None and server.proc.poll() is None
    assert "STORE LOST" not in server.stderr()

