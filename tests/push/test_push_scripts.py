"""The push scripts called through SubscriptionStore with a driven clock: generations, a subscription
removed mid-delivery, ended leases."""

from __future__ import annotations

from dataclasses import replace

import pytest

from broker import errors
from broker.schemas import CreateQueueRequest
from broker.store.inspect import Inspector
from broker.store.keys import ProjectKeys
from broker.store.queues import OutgoingMessage


@pytest.fixture
async def leased(store, subs, project, make_sub):
    """A subscribed queue "q" (max_retries 3) with one message leased as a push would lease it."""
    await store.create_queue(project, CreateQueueRequest(name="q", max_retries=3))
    await subs.subscribe(project, "q", make_sub("https://hooks.test/"), new_id="sub_1")
    await store.publish(project, "q", [OutgoingMessage(payload=b"1")], batch=False)
    [message], _ = await store.claim(project, "q", 1, 30_000)
    [sub] = await subs.active([project])
    return sub, message


async def test_attempt_of_a_replaced_subscription_does_not_touch_the_new_one(store, subs, project, make_sub, leased,
                                                                             redis_client):
    old, message = leased
    await subs.subscribe(project, "q", make_sub("https://hooks.test/new"), new_id="sub_2")
    [new] = await subs.active([project])
    assert new.generation == old.generation + 1
    assert await subs.fail(old, message.message_id, message.receipt, delay_ms=0, status=410, error="gone",
                           duration_ms=5) == "requeued"
    info = await subs.get(project, "q")
    assert info.subscription_id == "sub_1"  # replacing keeps the id
    assert (info.disabled, info.consecutive_failures, info.last_status) == (False, 0, None)
    [again], _ = await store.claim(project, "q", 1, 30_000)
    settled = await subs.push_ack(old, again.message_id, again.receipt, 200, attempt=again.attempts, duration_ms=5)
    assert settled == (True, False)  # settled, not recorded
    await store.publish(project, "q", [OutgoingMessage(payload=b"2")], batch=False)
    [third], _ = await store.claim(project, "q", 1, 30_000)
    settled = await subs.push_ack(new, third.message_id, third.receipt, 200, attempt=third.attempts, duration_ms=5)
    assert settled == (True, True)
    assert (await subs.get(project, "q")).last_status == 200


async def test_failure_after_unsubscribe_uses_the_queue_settings(store, subs, project, leased, redis_client):
    sub, message = leased
    await subs.unsubscribe(project, "q")
    outcome = await subs.fail(sub, message.message_id, message.receipt, delay_ms=1000, status=500, error="HTTP 500",
                              duration_ms=5)
    assert outcome == "requeued"
    qk = ProjectKeys(project).queue("q")
    assert not await redis_client.exists(qk.subst)  # no state left behind for a removed subscription
    assert await redis_client.zscore(qk.delayed, message.message_id) is not None


async def test_a_lease_that_ended_cannot_be_failed(store, subs, project, leased, clock):
    sub, message = leased
    clock.advance(30)
    with pytest.raises(errors.LeaseExpired):
        await subs.fail(sub, message.message_id, message.receipt, delay_ms=0, status=500, error="late", duration_ms=5)
    with pytest.raises(errors.LeaseExpired):
        await subs.fail(sub, message.message_id, "wrong.1", delay_ms=0, status=500, error="late", duration_ms=5)


async def test_unknown_message_and_queue(store, subs, project, leased):
    sub, _ = leased
    with pytest.raises(errors.MessageNotFound):
        await subs.fail(sub, "nope", "", delay_ms=0, status=500, error="x", duration_ms=5)
    with pytest.raises(errors.QueueNotFound):
        await subs.fail(replace(sub, queue="missing"), "nope", "", delay_ms=0, status=500, error="x", duration_ms=5)
    await store.create_queue(project, CreateQueueRequest(name="bare"))
    with pytest.raises(errors.SubscriptionNotFound):
        await subs.unsubscribe(project, "bare")


async def test_push_outcomes_are_in_the_history(store, subs, project, leased, clock):
    """queue.history counts the push attempts per minute: successes, and failures retried or dead-lettered."""
    sub, message = leased
    assert await subs.fail(sub, message.message_id, message.receipt, delay_ms=0, status=500, error="HTTP 500",
                           duration_ms=5) == "requeued"
    [again], _ = await store.claim(project, "q", 1, 30_000)
    settled = await subs.push_ack(sub, again.message_id, again.receipt, 200, attempt=again.attempts, duration_ms=5)
    assert settled == (True, True)
    [point] = (await Inspector(store).history(project, "q", 1))
    assert (point.push_success, point.push_failure, point.acked, point.published) == (1, 1, 1, 1)
