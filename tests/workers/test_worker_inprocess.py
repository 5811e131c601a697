"""``broker serve`` runs the background jobs in-process (run_workers): maintenance happens with no
consumer and no worker process, and stopping the app stops the jobs."""

from __future__ import annotations

import asyncio

from broker.jobs.inprocess import start_background
from broker.jobs.runner import BackgroundOptions
from broker.settings import Settings
from broker.store.keys import ProjectKeys


async def test_serve_maintains_in_process(app_factory, project, clock, redis_client):
    extra = {"background_projects": [project], "maintenance_interval_seconds": 0.05}
    (api,) = await app_factory(project, run_workers=True, extra=extra)
    await api.ok("POST", "/v1/queue/create", {"name": "q"})
    await api.ok("POST", "/v1/queue/publish", {"queue": "q", "payload": 1})
    await api.ok("POST", "/v1/queue/consume", {"queue": "q", "visibility_timeout": 10})
    qk = ProjectKeys(project).queue("q")
    clock.advance(10)
    for _ in range(200):  # no request touches the queue: only the background job can move it
        if await redis_client.zcard(qk.avail) == 1:
            break
        await asyncio.sleep(0.01)
    assert (await redis_client.zcard(qk.avail), await redis_client.zcard(qk.inflight)) == (1, 0)


async def test_start_and_stop(store, project):
    class Ctx:
        settings = Settings(extra={"background_projects": [project], "maintenance_interval_seconds": 0.05})
        notifier = None

    Ctx.store = store  # type: ignore[attr-defined]
    runner = await start_background(Ctx)  # type: ignore[arg-type]
    assert runner.options.projects == (project,) and runner.dispatcher is not None
    await asyncio.sleep(0.1)
    await asyncio.wait_for(runner.stop(), 5)


def test_options_from_settings():
    assert BackgroundOptions.from_settings(Settings()) == BackgroundOptions()
    options = BackgroundOptions.from_settings(Settings(extra={"push_poll_seconds": "0.5"}))
    assert options.push_poll_s == 0.5
