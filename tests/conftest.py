"""Shared fixtures. Tests run against the real Redis (``BROKER_TEST_REDIS_URL``, default
redis://127.0.0.1:6379/0). Each test works in its own project (a unique name), so tests can run in
parallel with each other and with anything else on that Redis, and each removes only its own keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from support import REDIS_URL, Clock, delete_project

from broker.http.app import create_app
from broker.jobs import arq_worker
from broker.jobs.runner import BackgroundOptions
from broker.settings import Settings
from broker.store.queues import Store
from broker.store.scripts import Scripts


@pytest.fixture
async def redis_client() -> AsyncIterator[Any]:
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def make_project(redis_client: Any) -> AsyncIterator[Callable[..., str]]:
    """Factory of unique project names; their keys are deleted after the test."""
    created: list[str] = []

    def make(prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        created.append(name)
        return name

    yield make
    for name in created:
        await delete_project(redis_client, name)


@pytest.fixture
def project(make_project: Callable[..., str]) -> str:
    """A project of the test's own (deleted after it)."""
    return make_project()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(redis_client: Any, clock: Clock) -> AsyncIterator[Store]:
    scripts = Scripts(redis_client)
    await scripts.load()
    yield Store(redis_client, scripts, clock)
    await scripts.close()


class Api:
    """An HTTP client of the app for one project, with helpers that return parsed JSON."""

    def __init__(self, client: httpx.AsyncClient, key: str, project: str, ctx: Any = None):
        self.client = client
        self.key = key
        self.project = project
        self.ctx = ctx  #: the app's shared state (store, notifier, ...), to observe what a request waits for
        self.headers = {"Authorization": f"Bearer {key}"}

    async def request(self, method: str, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        return await self.client.request(method, path, json=json, headers=headers, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.request("POST", path, json, **kw)

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", path, **kw)

    async def ok(self, method: str, path: str, json: Any = None) -> Any:
        r = await self.request(method, path, json)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()


@pytest.fixture
async def app_factory(redis_client: Any, clock: Clock) -> AsyncIterator[Callable[..., Any]]:
    """Start the app in-process (lifespan included) with the given projects' keys; returns Api objects."""
    stack: list[Any] = []

    async def start(*projects: str, run_workers: bool = False, use_clock: bool = True, tracing: Any = None,
                    **settings: Any) -> list[Api]:
        keys = tuple((p, f"key-{p}-{uuid.uuid4().hex}") for p in projects)
        app = create_app(
            Settings(redis_url=REDIS_URL, api_keys=keys, run_workers=run_workers, **settings),
            redis=redis_client,
            clock=clock if use_clock else None,
            tracing=tracing,
        )
        lifespan = app.router.lifespan_context(app)
        state = await lifespan.__aenter__()
        stack.append(lifespan)

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = dict(state)
            await app(scope, receive, send)

        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=with_state), base_url="http://test")
        stack.append(client)
        return [Api(client, key, p, state.get("ctx")) for p, key in keys]

    yield start
    for item in reversed(stack):
        if isinstance(item, httpx.AsyncClient):
            await item.aclose()
        else:
            await item.__aexit__(None, None, None)


@pytest.fixture
async def api(app_factory: Any, project: str) -> Api:
    """The app with one project."""
    (client,) = await app_factory(project)
    return client


@pytest.fixture
async def two_tenants(app_factory: Any, make_project: Any) -> tuple[Api, Api]:
    """The app with two projects, A and B."""
    a, b = await app_factory(make_project("ta"), make_project("tb"))
    return a, b


@pytest.fixture
async def scoped_arq_queue(project: str, redis_client: Any) -> AsyncIterator[str]:
    """The arq queue of worker processes limited to the test's project; removed after the test, with the job
    records it names."""
    queue = arq_worker.queue_name(BackgroundOptions(projects=(project,)))
    yield queue
    for job_id in await redis_client.zrange(queue, 0, -1):
        job = job_id.decode()
        await redis_client.unlink(*(f"arq:{kind}:{job}" for kind in ("job", "in-progress", "retry", "result")))
    await redis_client.unlink(queue, f"{queue}:health-check")
