"""Push delivery of a project with an account (docs/admin.md): metered as pushed, never charged."""

from __future__ import annotations

from typing import Any

from broker.schemas import CreateQueueRequest
from broker.store.accounts import Accounts, day_of
from broker.store.queues import OutgoingMessage


async def test_an_accepted_push_is_metered_and_not_charged(store: Any, subs: Any, project: str, make_sub: Any) -> None:
    accounts = Accounts(store.redis, store.scripts)
    await accounts.create(project, None, store.clock())
    await store.create_queue(project, CreateQueueRequest(name="q", max_retries=3))
    await subs.subscribe(project, "q", make_sub("https://hooks.test/"), new_id="sub_1")
    await accounts.add_credit(project, 1)
    await store.publish(project, "q", [OutgoingMessage(payload=b"1")], batch=False)  # the 1 unit
    [message], _ = await store.claim(project, "q", 1, 30_000, charged=False)  # as push delivery claims
    [sub] = await subs.active([project])
    settled = await subs.push_ack(sub, message.message_id, message.receipt, 200, attempt=message.attempts,
                                  duration_ms=5)
    assert settled == (True, True)
    assert (await accounts.get(project)).credit == 0
    today = day_of(store.clock())
    usage = {r.capability: r for r in await accounts.usage(project, today, today)}
    assert usage["queue.push"].pushed == 1 and usage["queue.consume"].delivered == 1
    assert usage["queue.consume"].calls == 0
