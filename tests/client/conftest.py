"""Fixtures of the client tests: one real ``broker serve`` for the session (its own durable redis-server,
background jobs on, push to loopback addresses allowed), clients of it, and unique queues that are deleted
after each test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from clientkit import Server
from support.fleet import Fleet

from broker.client import AsyncClient, BrokerError, Client


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    fleet = Fleet(tmp_path_factory.mktemp("client-server"))
    key, limited_key = f"client-{uuid.uuid4().hex}", f"limited-{uuid.uuid4().hex}"
    try:
        node = fleet.redis()
        api = fleet.serve(node.url, f"client:{key},limited:{limited_key}", BROKER_PUSH_ALLOW_PRIVATE="1")
        yield Server(api.url, key, limited_key, node.url)
    finally:
        fleet.stop_all()


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.url, server.key, retries=2) as made:
        yield made


@pytest.fixture
async def aclient(server: Server) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.url, server.key, retries=2) as made:
        yield made


@pytest.fixture
def make_queue(server: Server) -> Iterator[Callable[..., str]]:
    """Create a queue with a unique name (settings as keyword arguments); every one is deleted afterwards."""
    made: list[str] = []
    admin = Client(server.url, server.key)

    def make(prefix: str = "q", **settings: object) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        admin.create_queue(name, **settings)  # type: ignore[arg-type]
        made.append(name)
        return name

    yield make
    for name in reversed(made):  # dead-letter queues were made first
        try:
            admin.delete_queue(name)
        except BrokerError as exc:  # a test that left a queue in use must not hide its own failure
            print(f"could not delete {name}: {exc}")
    admin.close()


@pytest.fixture
def queue(make_queue: Callable[..., str]) -> str:
    """A fresh standard queue."""
    return make_queue()


