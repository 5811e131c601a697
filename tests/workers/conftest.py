"""Fixtures for tests that start real worker processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from broker.jobs import arq_worker as main
from broker.jobs.runner import BackgroundOptions


async def delete_arq_queue(redis_client: Any, queue: str) -> None:
    """Remove an arq queue that only this test's workers used, with the job records it names."""
    for job_id in await redis_client.zrange(queue, 0, -1):
        job = job_id.decode()
        await redis_client.unlink(*(f"arq:{kind}:{job}" for kind in ("job", "in-progress", "retry", "result")))
    await redis_client.unlink(queue, f"{queue}:health-check")


@pytest.fixture
async def scoped_arq_queue(project: str, redis_client: Any) -> AsyncIterator[str]:
    """The arq queue of workers limited to the test's project; removed after the test."""
    queue = main.queue_name(BackgroundOptions(projects=(project,)))
    yield queue
    await delete_arq_queue(redis_client, queue)
