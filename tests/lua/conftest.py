"""Fixtures of the script-level tests. Time only moves through ``clock.advance``."""

from __future__ import annotations

from typing import Any

import pytest
from scriptkit import MakeQueue, Queue

from broker.schemas import CreateQueueRequest
from broker.store.queues import Store


@pytest.fixture
def make_queue(store: Store, project: str) -> MakeQueue:
    """Create a queue in the test's project: ``await make_queue("jobs", max_retries=1)``."""

    async def make(name: str = "jobs", **config: Any) -> Queue:
        await store.create_queue(project, CreateQueueRequest(name=name, **config))
        return Queue(store, project, name)

    return make


@pytest.fixture
async def queue(make_queue: MakeQueue) -> Queue:
    """A standard queue with the defaults."""
    return await make_queue()
