"""A worker process killed with SIGKILL in the middle of a delivery: the message stays leased until its
lease ends, then another runner delivers it (at-least-once; the same webhook-id lets receivers dedupe)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from typing import Any

from support import REDIS_URL, eventually

WORKER = """
import sys
from dataclasses import replace
from broker.settings import Settings
from broker.jobs.arq_worker import run_worker
settings = Settings.from_env()
extra = {"background_projects": [sys.argv[1]], "push_poll_seconds": 0.05, "push_refresh_seconds": 0.05}
sys.exit(run_worker(replace(settings, extra=extra)))
"""
LEASE_S = 2


async def test_kill_9_mid_delivery_then_redelivery(app_factory, project, receiver, tls_files, start_runner, clock,
                                                   tmp_path, scoped_arq_queue):
    (api,) = await app_factory(project, push_allow_private=True)
    await api.ok("POST", "/v1/queue/create", {"name": "jobs"})
    await api.ok("POST", "/v1/queue/push_subscribe/jobs", {"url": receiver.url(), "visibility_timeout": LEASE_S})
    hold = asyncio.Event()

    async def first_hangs(_request: Any) -> Any:
        if len(receiver.requests) == 1:
            await hold.wait()
        return 200, {}, b"ok"

    receiver.respond = first_hangs
    message_id = (await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": {"n": 1}}))["message_id"]
    env = {**os.environ, "BROKER_REDIS_URL": REDIS_URL, "BROKER_PUSH_ALLOW_PRIVATE": "1",
           "SSL_CERT_FILE": str(tls_files.ca), "BROKER_LOG_LEVEL": "warning"}
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = await asyncio.create_subprocess_exec(sys.executable, "-c", WORKER, project, env=env,
                                                      stdout=log, stderr=log)
    try:
        try:
            await receiver.wait_for(1, timeout=20)
        except AssertionError:
            raise AssertionError(log_path.read_text()) from None
        worker.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(worker.wait(), 10) == -signal.SIGKILL
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    stats = await api.ok("GET", "/v1/queue/stats/jobs")
    assert (stats["in_flight"], stats["available"]) == (1, 0)  # still leased by the dead worker

    clock.ms = max(clock.ms, int(time.time() * 1000)) + LEASE_S * 1000 + 500  # past the dead worker's lease
    await start_runner()
    first, second = await receiver.wait_for(2)
    hold.set()
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == message_id
    assert [first.json()["attempts"], second.json()["attempts"]] == [1, 2]

    async def settled() -> Any:
        stats = await api.ok("GET", "/v1/queue/stats/jobs")
        return stats if stats["in_flight"] == stats["available"] == 0 else None

    stats = await eventually(settled)
    assert stats["dlq"] == 0
