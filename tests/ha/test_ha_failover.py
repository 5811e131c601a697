"""Failovers under load with the queue checker over the whole history (failover.py), on a Sentinel shard (a
durable primary, a replica, three sentinels) and on a Redis Cluster (three primaries with a replica each).

The normal test run is reduced: with ``BROKER_REPLICA_ACKS=1``, 2 failovers each, lost = 0; without it, one
failover, whose loss is printed, not asserted (asynchronous replication may lose the last acknowledged writes).
``BROKER_HA_FULL=1`` runs the full size (``BROKER_HA_FAILOVERS``, default 10, failovers per run) and
``BROKER_HA_REPORT=path`` writes the figures as JSON; see docs/reliability.md."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from failover import FailoverConfig, FailoverResult, run_failovers
from support.fleet import Fleet
from support.sentinels import SentinelShard

FULL = os.environ.get("BROKER_HA_FULL", "").strip().lower() in ("1", "true", "yes", "on")
FAILOVERS = int(os.environ.get("BROKER_HA_FAILOVERS", "10")) if FULL else 2


def report(name: str, result: FailoverResult) -> None:
    print("\n" + result.table())
    path = os.environ.get("BROKER_HA_REPORT")
    if path:
        existing: dict[str, Any] = json.loads(Path(path).read_text()) if Path(path).exists() else {}
        existing[name] = result.figures()
        Path(path).write_text(json.dumps(existing, indent=2) + "\n")


def assert_nothing_lost(result: FailoverResult, failovers: int) -> None:
    verdict = result.verdict
    assert not verdict.lost, f"acknowledged but never processed: {verdict.lost[:20]}"
    assert not verdict.never_delivered, f"acknowledged but never delivered: {verdict.never_delivered[:20]}"
    assert_sound(result, failovers)


def assert_sound(result: FailoverResult, failovers: int) -> None:
    verdict = result.verdict
    assert not verdict.unexpected, f"delivered but never published: {verdict.unexpected[:20]}"
    assert not verdict.corrupted, f"payload changed: {verdict.corrupted[:20]}"
    assert not verdict.double_stored, f"one publish stored twice: {verdict.double_stored[:20]}"
    assert not result.history.server_errors, result.history.server_errors[:20]
    assert not result.problems, result.problems
    assert len(result.timings) == failovers and verdict.acknowledged > 0
    assert 503 in {status for (_, status) in result.history.statuses}  # the failovers were seen
    # Every request answered (200 or 503) within the client's 31 s: the answer's bound is 15 s after the body.
    assert not result.history.hangs, result.history.hangs[:20]


@pytest.mark.timeout(3600 if FULL else 240)
async def test_sentinel_failovers_lose_nothing_with_replica_acks(fleet: Fleet) -> None:
    shard = SentinelShard(fleet).start()
    result = await run_failovers(fleet, shard, FailoverConfig(failovers=FAILOVERS, replica_acks=1))
    report("sentinel_replica_acks_1", result)
    assert_nothing_lost(result, FAILOVERS)


@pytest.mark.timeout(3600 if FULL else 240)
async def test_sentinel_failovers_without_replica_acks_measured(fleet: Fleet) -> None:
    shard = SentinelShard(fleet).start()
    failovers = FAILOVERS if FULL else 1
    result = await run_failovers(fleet, shard, FailoverConfig(failovers=failovers, replica_acks=0))
    report("sentinel_replica_acks_0", result)
    print(f"without replica acks: lost {len(result.verdict.lost)} of {result.verdict.acknowledged} acknowledged")
    assert_sound(result, failovers)


@pytest.mark.timeout(3600 if FULL else 300)
async def test_cluster_failovers_lose_nothing_with_replica_acks(fleet: Fleet) -> None:
    from support.clusters import ClusterShards

    cluster = ClusterShards(fleet, slot_key="v1:{ha}:x").start()
    result = await run_failovers(fleet, cluster, FailoverConfig(failovers=FAILOVERS, replica_acks=1))
    report("cluster_replica_acks_1", result)
    assert_nothing_lost(result, FAILOVERS)
