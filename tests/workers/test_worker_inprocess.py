"""``broker serve`` runs the background jobs in-process (run_workers): maintenance happens with no
consumer and no worker process, and stopping the app stops the jobs."""

from __future__ import annotations

import asyncio

import pytest
from support import eventually

from broker.jobs.inprocess import start_background
from broker.jobs.runner import BackgroundOptions
from broker.schemas import CreateQueueRequest
from broker.services import open_services
from broker.settings import ConfigError, Settings
from broker.store.keys import ProjectKeys
from broker.store.queues import OutgoingMessage


async def test_serve_maintains_in_process(app_factory, project, clock, redis_client):
    extra = {"background_projects": [project], "maintenance_interval_seconds": 0.05}
    (api,) = await app_factory(project, run_workers=True, extra=extra)
    await api.ok("POST", "/v1/queue/create", {"name": "q"})
    await api.ok("POST", "/v1/queue/publish", {"queue": "q", "payload": 1})
    await api.ok("POST", "/v1/queue/consume", {"queue": "q", "visibility_timeout": 10})
    qk = ProjectKeys(project).queue("q")
    clock.advance(10)

    async def requeued() -> bool:  # no request touches the queue: only the background job can move it
        return (await redis_client.zcard(qk.avail), await redis_client.zcard(qk.inflight)) == (1, 0)

    await eventually(requeued, what="the ended lease back in available")


async def test_start_and_stop(redis_client, project, clock):
    """The runner that ``start_background`` builds from the services does its jobs while it runs (an ended lease
    and a due delay, with nobody consuming, are made available), and ``stop`` ends every task it started."""
    settings = Settings(extra={"background_projects": [project], "maintenance_interval_seconds": 0.05})
    async with open_services(settings, redis=redis_client, clock=clock) as services:
        store = services.store
        await store.create_queue(project, CreateQueueRequest(name="q"))
        leased, delayed = await store.publish(
            project, "q", [OutgoingMessage(payload=b"1"), OutgoingMessage(payload=b"2", delay_ms=5_000)], batch=True
        )
        await store.claim(project, "q", 1, 5_000)
        qk = ProjectKeys(project).queue("q")
        runner = await start_background(services)
        try:
            assert runner.options.projects == (project,) and runner.dispatcher is not None
            clock.advance(5)  # the lease has ended and the delay is due

            async def both_available() -> bool:
                return await redis_client.zcard(qk.avail) == 2

            await eventually(both_available, what="the runner's maintenance making both messages available")
            assert {m.decode() for m in await redis_client.zrange(qk.avail, 0, -1)} == {leased, delayed}
        finally:
            await asyncio.wait_for(runner.stop(), 5)
    running = [t.get_name() for t in asyncio.all_tasks() if not t.done() and t is not asyncio.current_task()]
    assert not {"maintenance", "push-dispatcher"} & set(running), running


def test_options_from_settings():
    assert BackgroundOptions.from_settings(Settings()) == BackgroundOptions()
    options = BackgroundOptions.from_settings(Settings(extra={"push_poll_seconds": "0.5"}))
    assert options.push_poll_s == 0.5


def test_endpoint_concurrency_from_settings():
    options = BackgroundOptions.from_settings(Settings(extra={"push_endpoint_concurrency": "8"}))
    assert options.push_per_endpoint == 8
    for bad in (0, 10_001, "many", 1.5, True):
        with pytest.raises(ConfigError):
            BackgroundOptions.from_settings(Settings(extra={"push_endpoint_concurrency": bad}))


async def test_services_cancelled_while_starting_leave_no_task_behind() -> None:
    """A SIGTERM while a worker starts cancels open_services in the middle of the guard's first check (here a
    store that accepts connections and never answers): what was started is stopped, and no task of it is left
    pending (at the loop's close it would be destroyed pending and print a traceback)."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    before = asyncio.all_tasks()
    settings = Settings(redis_url=f"redis://127.0.0.1:{port}/0")

    async def start() -> None:
        async with open_services(settings, guard=True):
            raise AssertionError("the silent store cannot finish the start")  # pragma: no cover

    starting = asyncio.create_task(start())
    await asyncio.sleep(0.3)  # inside the guard's first check, waiting for the store's answer
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    left = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()]
    assert left == [], left
    server.close()
    await server.wait_closed()
