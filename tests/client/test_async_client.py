"""The asyncio client against a real server: the same methods, awaitable, and the same errors and retries."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable

import pytest
from clientkit import Server, lossy_proxy

import broker.client as bc
from broker.client import AsyncClient, Client


def test_both_clients_have_the_same_methods_and_signatures() -> None:
    public = {n for n in dir(Client) if not n.startswith("_") and n not in ("from_env", "close")}
    assert public == {n for n in dir(AsyncClient) if not n.startswith("_") and n not in ("from_env", "aclose")}
    for name in public - {"send", "iter_queues", "iter_dlq", "base_url", "timeout", "retry"}:
        assert inspect.signature(getattr(Client, name)) == inspect.signature(getattr(AsyncClient, name)), name


async def test_publish_consume_ack_and_pages(aclient: AsyncClient, make_queue: Callable[..., str]) -> None:
    queue = make_queue()
    others = {make_queue("apage") for _ in range(3)}
    published = await asyncio.gather(*(aclient.publish(queue, payload={"n": n}) for n in range(5)))
    consumed = (await aclient.consume(queue, max_messages=10)).messages
    assert sorted(m.message_id for m in consumed) == sorted(p.message_id for p in published)
    assert sorted(m.payload["n"] for m in consumed) == list(range(5))
    assert (await aclient.ack_batch(queue, messages=consumed)).queue == queue
    assert (await aclient.stats(queue)).in_flight == 0
    listed = [q.queue async for q in aclient.iter_queues(limit=2)]
    assert others | {queue} <= set(listed)


async def test_long_poll_returns_when_a_message_arrives(aclient: AsyncClient, queue: str) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiting = asyncio.create_task(aclient.consume(queue, wait_seconds=15))
    await asyncio.sleep(0.5)
    await aclient.publish(queue, payload="wake")
    [message] = (await waiting).messages
    assert message.payload == "wake" and loop.time() - started < 5


async def test_errors_and_a_lost_answer(aclient: AsyncClient, queue: str, server: Server) -> None:
    with pytest.raises(bc.QueueNotFound) as missing:
        await aclient.get_queue("absent-queue")
    assert missing.value.request_id and missing.value.status == 404
    port = int(server.url.rsplit(":", 1)[1])
    with lossy_proxy(port, lose=1) as proxy:
        async with AsyncClient(proxy.url, server.key, retries=3) as lossy:
            published = await lossy.publish(queue, payload="once")
        assert proxy.connections == 2
    [message] = (await aclient.consume(queue, max_messages=10)).messages
    assert message.message_id == published.message_id
