"""Concurrent script calls of one process share pipelines; each caller still gets its own reply or error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker import errors
from broker.schemas import CreateQueueRequest
from broker.scripts import Scripts
from broker.store import OutgoingMessage, Store


async def test_concurrent_calls_share_a_pipeline_and_keep_their_own_results(
    redis_client: Any, project: str, clock: Any
) -> None:
    scripts = Scripts(redis_client)
    store = Store(redis_client, scripts, clock)
    await store.create_queue(project, CreateQueueRequest(name="q"))
    sent: list[int] = []
    original = scripts.coalescer._send  # type: ignore[union-attr]

    async def counting(batch: list[Any]) -> None:
        sent.append(len(batch))
        await original(batch)

    scripts.coalescer._send = counting  # type: ignore[union-attr,method-assign]
    calls = [store.publish(project, "q", [OutgoingMessage(b'{"n": %d}' % i)], batch=False) for i in range(50)]
    calls.append(store.publish(project, "missing", [OutgoingMessage(b"1")], batch=False))
    results = await asyncio.gather(*calls, return_exceptions=True)
    ids = [r[0] for r in results[:50]]
    assert len(set(ids)) == 50
    assert isinstance(results[50], errors.QueueNotFound)
    assert max(sent) > 1  # they really went out together
    stats = await store.stats(project, "q")
    assert stats.available == 50


async def test_noscript_inside_a_pipeline_reloads(redis_client: Any, project: str, clock: Any) -> None:
    scripts = Scripts(redis_client)
    store = Store(redis_client, scripts, clock)
    await store.create_queue(project, CreateQueueRequest(name="q"))
    # Every client of this Redis reloads on its next NOSCRIPT, as this one does here.
    await redis_client.script_flush()
    results = await asyncio.gather(
        *[store.publish(project, "q", [OutgoingMessage(b"1")], batch=False) for _ in range(10)]
    )
    assert len({r[0] for r in results}) == 10


@pytest.mark.parametrize("coalesce", [True, False])
async def test_both_paths_map_errors_the_same(redis_client: Any, project: str, clock: Any, coalesce: bool) -> None:
    store = Store(redis_client, Scripts(redis_client, coalesce=coalesce), clock)
    with pytest.raises(errors.QueueNotFound):
        await store.claim(project, "nope", 1, None)
