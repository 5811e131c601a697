"""``broker worker``: the arq settings built from Settings, and a real worker process that maintains
queues nobody consumes and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest
from arq.connections import RedisSettings
from arq.jobs import deserialize_job, serialize_job
from support import REDIS_URL, eventually

from broker.jobs import arq_worker as main
from broker.schemas import CreateQueueRequest
from broker.settings import ConfigError, Settings
from broker.store.keys import ProjectKeys
from broker.store.queues import OutgoingMessage

WORKER = """
import sys
from dataclasses import replace
from broker.settings import Settings
from broker.jobs.arq_worker import run_worker
extra = {"background_projects": [sys.argv[1]], "maintenance_interval_seconds": 1}
sys.exit(run_worker(replace(Settings.from_env(), extra=extra)))
"""


def test_worker_settings_from_settings():
    cls = main.worker_settings(Settings(redis_url="redis://db.example:6390/3"))
    redis_settings: RedisSettings = cls.redis_settings
    assert (redis_settings.host, redis_settings.port, redis_settings.database) == ("db.example", 6390, 3)
    assert cls.queue_name == main.ARQ_QUEUE
    [job] = cls.cron_jobs
    assert job.name == "maintenance" and job.unique and job.second == set(range(0, 60, 5))
    assert cls.on_startup is main.startup and cls.on_shutdown is main.shutdown
    assert main.worker_settings(Settings(redis_url=REDIS_URL)).ctx is not cls.ctx  # a fresh ctx per class


def test_scoped_workers_use_their_own_arq_queue():
    scoped = main.worker_settings(Settings(redis_url=REDIS_URL, extra={"background_projects": ["a", "b"],
                                                                        "maintenance_interval_seconds": 2}))
    assert scoped.queue_name.startswith(main.ARQ_QUEUE + ":scoped:")
    assert scoped.cron_jobs[0].second == set(range(0, 60, 2))
    assert scoped.cron_jobs[0].name.startswith("maintenance-")  # arq job ids start with it


def test_jobs_are_serialized_as_json_not_pickle():
    cls = main.worker_settings(Settings(redis_url=REDIS_URL))
    raw = serialize_job("maintenance", (), {}, 1, 1_700_000_000_000, serializer=cls.job_serializer)
    assert raw.startswith(b"{")
    job = deserialize_job(raw, deserializer=cls.job_deserializer)
    assert (job.function, list(job.args), job.kwargs, job.job_try) == ("maintenance", [], {}, 1)


def test_worker_needs_a_redis_url():
    with pytest.raises(ConfigError, match="BROKER_REDIS_URL"):
        main.run_worker(Settings())
    with pytest.raises(ConfigError):
        main.worker_settings(Settings())


def test_arq_cli_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("BROKER_REDIS_URL", "redis://127.0.0.1:6399/1")
    cls = main.WorkerSettings
    assert cls.redis_settings.port == 6399 and cls.redis_settings.database == 1


async def test_worker_process_maintains_queues_nobody_consumes(store, project, redis_client, tmp_path,
                                                               scoped_arq_queue):
    await store.create_queue(project, CreateQueueRequest(name="q"))
    qk = ProjectKeys(project).queue("q")
    [leased, delayed] = await store.publish(
        project, "q", [OutgoingMessage(payload=b"1"), OutgoingMessage(payload=b"2", delay_ms=500)], batch=True
    )
    await store.claim(project, "q", 1, 500)  # the worker runs on the real clock: both are due in 0.5 s
    env = {**os.environ, "BROKER_REDIS_URL": REDIS_URL, "BROKER_LOG_LEVEL": "warning"}
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = await asyncio.create_subprocess_exec(sys.executable, "-c", WORKER, project, env=env,
                                                      stdout=log, stderr=log)
    try:
        async def both_available() -> bool:
            return await redis_client.zcard(qk.avail) == 2

        await eventually(both_available, 15, interval=0.05, what=lambda: f"both available\n{log_path.read_text()}")
        assert await redis_client.zcard(qk.inflight) == await redis_client.zcard(qk.delayed) == 0
        assert {leased, delayed} == {m.decode() for m in await redis_client.zrange(qk.avail, 0, -1)}
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(worker.wait(), 15) == 0, log_path.read_text()
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
