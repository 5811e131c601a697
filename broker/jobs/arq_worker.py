"""``broker worker``: the background jobs as arq worker processes.

Each process runs arq with one cron job, maintenance (every ``maintenance_interval_seconds``, 5 s by
default; arq enqueues each tick once under a unique job id, so a fleet of workers sweeps once per
tick), and the push delivery loop as a task started with the worker. Any number of worker processes
and ``broker serve`` processes (which run the same jobs in-process) can share one store: maintenance is
idempotent and bounded, and push delivery leases each message before sending it.

arq's own keys (its job queue, job records and health check) are named from :data:`ARQ_QUEUE`. Jobs
are serialized as JSON, never pickle.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

import msgspec
from arq import cron
from arq.connections import RedisSettings
from arq.worker import run_worker as arq_run_worker
from redis import exceptions as redis_errors

from broker.jobs import tasks
from broker.jobs.maintenance import Maintenance
from broker.jobs.runner import BackgroundOptions, BackgroundRunner
from broker.sentinel_url import is_sentinel_url, parse_sentinel_url
from broker.services import open_services
from broker.settings import ConfigError, Settings
from broker.store.connection import is_cluster_url
from broker.store.keys import ARQ_QUEUE
from broker.telemetry.logs import configure as configure_logging

log = logging.getLogger("broker.workers")
#: Seconds between an arq worker stopping on a lost store connection and its next start.
RESTART_DELAY_S = 1.0

MAINTENANCE_TIMEOUT_S = 120


def _json_dumps(value: Any) -> bytes:
    return msgspec.json.encode(value)


def _json_loads(raw: bytes) -> Any:
    return msgspec.json.decode(raw)


def _scope(options: BackgroundOptions) -> str | None:
    if options.projects is None:
        return None
    return hashlib.sha256("\0".join(sorted(options.projects)).encode()).hexdigest()[:16]


def queue_name(options: BackgroundOptions) -> str:
    """Workers limited to some projects get their own arq queue (and job name, which arq's job ids
    start with), so they never take, nor skip, the maintenance ticks of workers serving every project."""
    scope = _scope(options)
    return ARQ_QUEUE if scope is None else f"{ARQ_QUEUE}:scoped:{scope}"


def maintenance_job_name(options: BackgroundOptions) -> str:
    scope = _scope(options)
    return "maintenance" if scope is None else f"maintenance-{scope}"


async def startup(ctx: dict[str, Any]) -> None:
    """arq on_startup: the shared services, and the push delivery loop of this process."""
    settings: Settings = ctx["settings"]
    options: BackgroundOptions = ctx["options"]
    stack = contextlib.AsyncExitStack()
    ctx["stack"] = stack
    # The store-identity guard, as in the API processes (broker/store/instance.py): a store that came back
    # empty or was replaced is logged as lost, its new connections are refused and maintenance pauses.
    services = await stack.enter_async_context(open_services(settings, guard=True))
    runner = BackgroundRunner(
        services.store,
        options=replace(options, maintenance=False),  # arq's cron runs it
        notifier=services.notifier,
        allow_private=settings.push_allow_private,
        tracing=services.tracing,
    )
    await runner.start()
    stack.push_async_callback(runner.stop)
    ctx.update(store=services.store, runner=runner, maintenance=Maintenance(services.store, options.projects),
               guard=services.guard)


async def shutdown(ctx: dict[str, Any]) -> None:
    """arq on_shutdown: stop delivering (deliveries in flight get a grace period) and disconnect."""
    if "stack" in ctx:
        await ctx["stack"].aclose()


def arq_redis_settings(url: str) -> RedisSettings:
    """arq's connection settings for ``url``; for ``redis+sentinel://`` arq's own Sentinel support (its pool
    asks the sentinels for the primary, as the service's client does)."""
    if not is_sentinel_url(url):
        return RedisSettings.from_dsn(url)
    address = parse_sentinel_url(url)
    return RedisSettings(
        host=list(address.sentinels),  # arq takes a list of (host, port) for Sentinel
        sentinel=True,
        sentinel_master=address.master,
        database=address.db,
        username=address.username,
        password=address.password,
        ssl=address.ssl,
        conn_timeout=1,
    )


def worker_settings(settings: Settings) -> type:
    """The arq ``WorkerSettings`` class for ``settings`` (a fresh class, with its own ctx, per call)."""
    if not settings.redis_url:
        raise ConfigError("broker worker needs BROKER_REDIS_URL: the store that the API processes use")
    options = BackgroundOptions.from_settings(settings)
    step = min(60, max(1, round(options.maintenance_interval_s)))
    attributes: dict[str, Any] = {
        "functions": [],
        "cron_jobs": [
            cron(
                tasks.maintenance,
                name=maintenance_job_name(options),
                second=set(range(0, 60, step)),
                run_at_startup=True,
                unique=True,
                timeout=MAINTENANCE_TIMEOUT_S,
                keep_result=0,
                max_tries=1,
            )
        ],
        "redis_settings": arq_redis_settings(settings.redis_url),
        "queue_name": queue_name(options),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "ctx": {"settings": settings, "options": options},
        "job_serializer": _json_dumps,
        "job_deserializer": _json_loads,
        "keep_result": 0,
        "max_jobs": 4,
        "health_check_interval": 30,
    }
    return type("WorkerSettings", (), attributes)


def __getattr__(name: str) -> Any:
    """``WorkerSettings`` for the arq CLI (``arq broker.jobs.arq_worker.WorkerSettings``), read from the environment."""
    if name == "WorkerSettings":
        return worker_settings(Settings.from_env())
    raise AttributeError(name)


def _configure_logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format, settings.access_log)


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed (as ``broker serve`` uses), else asyncio's: push delivery spends much of
    its time in the loop's TLS and socket code."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _run_one(settings: Settings) -> None:
    """One arq worker until SIGINT/SIGTERM. arq's worker stops when its Redis connection fails (a Redis
    restart, a failover): it is started again after a second, so the process rides out a store outage as the
    API processes do."""
    cls = worker_settings(settings)
    while True:
        loop = _new_event_loop()
        asyncio.set_event_loop(loop)  # arq's Worker takes the current loop
        try:
            arq_run_worker(cls)
            return
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            log.warning("the worker lost the message store (%s); starting again in 1 s", exc)
        finally:
            loop.close()
            asyncio.set_event_loop(None)
        time.sleep(RESTART_DELAY_S)


def _run_many(settings: Settings) -> int:
    """``settings.workers`` child processes, each one worker; SIGINT/SIGTERM are passed on to them.
    A child that dies is not restarted here (run workers under a supervisor)."""
    env = {
        **os.environ,
        "BROKER_REDIS_URL": settings.redis_url or "",
        "BROKER_PUSH_ALLOW_PRIVATE": "1" if settings.push_allow_private else "0",
        "BROKER_LOG_LEVEL": settings.log_level,
    }
    command = [sys.executable, "-m", "broker.jobs.arq_worker"]
    children = [subprocess.Popen(command, env=env) for _ in range(settings.workers)]

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [child.wait() for child in children]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return max((abs(c) for c in codes), default=0)


def _run_cluster(settings: Settings) -> int:
    """arq does not support Redis Cluster: on a cluster, this process runs the same jobs (maintenance
    and push delivery) with the in-process runner until SIGINT/SIGTERM. Run several for redundancy;
    maintenance is bounded and idempotent, delivery is leased."""

    async def main() -> None:
        async with open_services(settings, guard=True) as services:
            runner = BackgroundRunner(
                services.store,
                options=BackgroundOptions.from_settings(settings),
                notifier=services.notifier,
                allow_private=settings.push_allow_private,
                tracing=services.tracing,
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await runner.start()
            try:
                await stop.wait()
            finally:
                await runner.stop()

    asyncio.run(main())
    return 0


def run_worker(settings: Settings) -> int:
    """Run the background jobs as arq worker processes until SIGINT/SIGTERM (``broker worker``):
    one in this process, or ``settings.workers`` child processes. Returns an exit status."""
    if not settings.redis_url:
        raise ConfigError("broker worker needs BROKER_REDIS_URL: the store that the API processes use")
    _configure_logging(settings)
    if is_cluster_url(settings.redis_url):
        return _run_cluster(settings)
    if settings.workers > 1:
        return _run_many(settings)
    _run_one(settings)
    return 0


if __name__ == "__main__":  # a child of _run_many
    sys.exit(run_worker(Settings.from_env()))
