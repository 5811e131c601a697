"""The long-poll notifier across store faults, in process: a wait never outlasts its timeout whatever the
store does, waiters wake when a store that was away comes back, and notifications work again after it."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import redis.asyncio as aioredis
from support import eventually, free_port
from support.fleet import Fleet

from broker.store.connection import connect
from broker.store.keys import ProjectKeys
from broker.store.notify import Notifier


async def test_a_wait_on_an_unreachable_store_ends_on_time() -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    notifier = Notifier(client)
    try:
        for timeout in (0.3, 1.0):
            started = time.monotonic()
            await notifier.wait("p", "q", timeout)
            assert timeout - 0.05 <= time.monotonic() - started < timeout + 0.5
        assert not notifier.connected
    finally:
        await notifier.close()
        await client.aclose()


async def test_a_wait_on_a_frozen_store_ends_on_time(fleet: Fleet) -> None:
    node = fleet.redis(name="store")
    client = connect(node.url)
    notifier = Notifier(client)
    try:
        await notifier.wait("p", "q", 0.1)  # subscribed while the store answers
        node.freeze()
        for timeout in (0.5, 4.0):
            started = time.monotonic()
            await notifier.wait("p", "q", timeout)
            assert time.monotonic() - started < timeout + 0.5
    finally:
        node.thaw()
        await notifier.close()
        await client.aclose()


#: The notifier's safety poll in these tests: shorter than the default, so that a wait can outlast it quickly.
SAFETY_POLL_S = 1.0


async def listening(publisher: Any) -> bool:
    """The store counts a subscriber on project "p"'s channel: what is published there now reaches the notifier."""
    [(_channel, count)] = await publisher.pubsub_numsub(ProjectKeys("p").notify)
    return bool(count)


async def assert_publish_wakes(notifier: Notifier, publisher: Any, wait: float, why: str) -> None:
    """A waiter of queue "q" of project "p" (waiting up to ``wait`` s) wakes soon after a publish on its channel,
    well before its own timeout and the safety poll."""
    waiter = asyncio.create_task(notifier.wait("p", "q", wait))
    await asyncio.sleep(0)  # the waiter registers itself before it first awaits anything
    await eventually(lambda: listening(publisher), 5, what="the notifier subscribing")
    await publisher.publish(ProjectKeys("p").notify, "q")
    started = time.monotonic()
    await waiter
    assert time.monotonic() - started < 0.5, why


async def test_waiters_wake_when_the_store_comes_back_and_hear_publishes_again(fleet: Fleet) -> None:
    node = fleet.redis(name="store")
    client = connect(node.url)
    publisher = aioredis.Redis(port=node.port)
    notifier = Notifier(client, safety_poll_seconds=SAFETY_POLL_S)
    try:
        await assert_publish_wakes(notifier, publisher, 1.0, "a publish did not wake the waiter")

        await asyncio.to_thread(node.kill, signal.SIGKILL)
        long_wait = asyncio.create_task(notifier.wait("p", "q", 15.0))
        await eventually(lambda: not notifier.connected, 5, what="the notifier noticing the store is away")
        await asyncio.sleep(SAFETY_POLL_S + 0.5)  # longer than the safety poll: it must not wake the waiter now
        assert not notifier.connected and not long_wait.done()  # no safety-poll wake-up while the store is away
        await asyncio.to_thread(node.start)
        back = time.monotonic()
        await asyncio.wait_for(long_wait, 10)
        assert time.monotonic() - back < 4, "the waiter did not wake when the store came back"
        assert notifier.connected

        await assert_publish_wakes(notifier, publisher, 5.0, "publishes are not heard after the restart")
    finally:
        await notifier.close()
        await client.aclose()
        await publisher.aclose()
