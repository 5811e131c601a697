"""A subscription's log of recent delivery attempts (the ``pushlog`` list, written by push_ack.lua and
push_fail.lua, read as ``recent_attempts`` of GET /v1/queue/push_subscription): what each entry holds, newest
first, capped, and gone with the subscription or the queue."""

from __future__ import annotations

import pytest

from broker.schemas import PUSH_LOG_SIZE, CreateQueueRequest
from broker.store.keys import ProjectKeys
from broker.store.queues import OutgoingMessage


@pytest.fixture
async def subscribed(store, subs, project, make_sub):
    """A queue "q" (max_retries 1) subscribed to a hook; returns its ActiveSubscription."""
    await store.create_queue(project, CreateQueueRequest(name="q", max_retries=1))
    await subs.subscribe(project, "q", make_sub("https://hooks.test/"), new_id="sub_1")
    [sub] = await subs.active([project])
    return sub


async def lease(store, project, payload=b"1", publish=True):
    if publish:
        await store.publish(project, "q", [OutgoingMessage(payload=payload)], batch=False)
    [message], _ = await store.claim(project, "q", 1, 30_000)
    return message


async def test_each_outcome_is_logged_newest_first(store, subs, project, subscribed, clock):
    sub = subscribed
    first = await lease(store, project)
    assert await subs.fail(sub, first.message_id, first.receipt, delay_ms=0, status=503, error="HTTP 503: busy",
                           duration_ms=12) == "requeued"
    clock.advance(1)
    again = await lease(store, project, publish=False)
    assert (again.message_id, again.attempts) == (first.message_id, 2)
    assert await subs.fail(sub, again.message_id, again.receipt, delay_ms=0, status=None, error="timed out",
                           duration_ms=30000) == "dead_lettered"
    clock.advance(1)
    other = await lease(store, project, b"2")
    await subs.push_ack(sub, other.message_id, other.receipt, 204, attempt=other.attempts, duration_ms=7)
    log = (await subs.get(project, "q")).recent_attempts
    assert [(a.message_id, a.attempt, a.outcome, a.status, a.error, a.duration_ms) for a in log] == [
        (other.message_id, 1, "success", 204, None, 7),
        (first.message_id, 2, "dead_lettered", None, "timed out", 30000),
        (first.message_id, 1, "failure", 503, "HTTP 503: busy", 12),
    ]
    assert log[0].at > log[1].at > log[2].at  # the settle times, a second apart on the driven clock


async def test_the_log_is_capped(store, subs, project, subscribed, redis_client):
    """At most PUSH_LOG_SIZE + 10 entries are kept (cut back to PUSH_LOG_SIZE when one more comes), the latest
    PUSH_LOG_SIZE read."""
    sub = subscribed
    key = ProjectKeys(project).queue("q").pushlog
    ids, lengths = [], []
    for n in range(PUSH_LOG_SIZE + 25):
        message = await lease(store, project, str(n).encode())
        await subs.push_ack(sub, message.message_id, message.receipt, 200, attempt=1, duration_ms=n)
        ids.append(message.message_id)
        lengths.append(await redis_client.llen(key))
    expected, length = [], 0
    for _ in ids:
        length = PUSH_LOG_SIZE if length + 1 > PUSH_LOG_SIZE + 10 else length + 1
        expected.append(length)
    assert lengths == expected and max(lengths) == PUSH_LOG_SIZE + 10 and lengths[-1] < PUSH_LOG_SIZE + 10
    log = (await subs.get(project, "q")).recent_attempts
    assert [a.message_id for a in log] == ids[::-1][:PUSH_LOG_SIZE]


async def test_a_long_error_is_cut_on_a_character(store, subs, project, subscribed):
    message = await lease(store, project)
    error = "HTTP 500: " + "é" * 400  # two bytes each: byte 300 falls inside one
    await subs.fail(subscribed, message.message_id, message.receipt, delay_ms=0, status=500, error=error,
                    duration_ms=1)
    [entry] = (await subs.get(project, "q")).recent_attempts
    assert error.startswith(entry.error) and 290 <= len(entry.error.encode()) <= 300


async def test_the_log_goes_with_the_subscription_and_the_queue(store, subs, project, subscribed, make_sub,
                                                                redis_client):
    sub = subscribed
    key = ProjectKeys(project).queue("q").pushlog
    message = await lease(store, project)
    await subs.push_ack(sub, message.message_id, message.receipt, 200, attempt=1, duration_ms=1)
    assert await redis_client.llen(key) == 1
    # Replacing the subscription starts a new log; an attempt made under the old one is not logged.
    await subs.subscribe(project, "q", make_sub("https://hooks.test/new"), new_id="sub_2")
    assert (await subs.get(project, "q")).recent_attempts == []
    late = await lease(store, project, b"2")
    await subs.push_ack(sub, late.message_id, late.receipt, 200, attempt=1, duration_ms=1)
    assert not await redis_client.exists(key)
    [new] = await subs.active([project])
    third = await lease(store, project, b"3")
    await subs.push_ack(new, third.message_id, third.receipt, 200, attempt=1, duration_ms=1)
    assert await redis_client.llen(key) == 1
    await subs.unsubscribe(project, "q")
    assert not await redis_client.exists(key)
    await subs.subscribe(project, "q", make_sub("https://hooks.test/"), new_id="sub_3")
    [newest] = await subs.active([project])
    fourth = await lease(store, project, b"4")
    await subs.push_ack(newest, fourth.message_id, fourth.receipt, 200, attempt=1, duration_ms=1)
    assert await redis_client.llen(key) == 1
    await store.delete_queue(project, "q")  # deleting the queue deletes its subscription's log
    assert not await redis_client.exists(key)
