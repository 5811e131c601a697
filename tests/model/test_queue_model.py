"""Model-based test: random sequences of operations run against the real scripts (through Store, with a
test clock) and against a small pure-Python model of the contract. After every step: each message is in
exactly one state, the Redis structures hold exactly the model's messages, the stats and the dead-letter
listing match, and every consume returns exactly what the model predicts (nothing early, nothing lost).

One fresh project per example; a standard queue with priority, and a FIFO queue with groups."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import hypothesis.strategies as st
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from support import REDIS_URL, delete_project

from broker import errors
from broker.schemas import CreateQueueRequest
from broker.store.keys import ProjectKeys
from broker.store.queues import OutgoingMessage, Store, fifo_line_message_id
from broker.store.scripts import Library, Scripts

DAY_MS = 86_400_000
MAX_RETRIES = 1
VISIBILITY_MS = 10_000
QUEUE = "jobs"
SCRIPTS = Library.load()  # read once for every example
T = TypeVar("T")

SETTINGS = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no explain: its tracing is slow
)
#: Time that passes just before an operation, so that the operation (not the stats call of the checks)
#: is the first to see ended leases, due delays and retention: ms, or "next"/"just-before" the next deadline.
ELAPSE = st.sampled_from([0, 0, 0, 1, 1000, 5000, "next", "next", "just-before"])
#: The same before an operation on a lease: mostly none, so that the lease is often still held.
ELAPSE_LEASED = st.sampled_from([0, 0, 0, 0, 0, 1, 1000, "next", "just-before"])
#: Which message an ack/nack/extend names: mostly one in flight, sometimes any message ever published.
LEASED = st.sampled_from(["inflight", "inflight", "inflight", "inflight", "any", "unknown"])
RECEIPT = st.sampled_from(["current", "current", "stale", "none"])


@dataclass
class Message:
    """The model's view of one message."""

    id: str
    seq: int
    priority: int
    group: str
    enqueued: int
    state: str = "waiting"  # waiting | inflight | dead | gone
    due: int = 0
    deadline: int = 0
    attempts: int = 0  # deliveries in the current retry budget
    deliveries: int = 0  # deliveries ever (a dead letter's attempts)
    dead_at: int = 0
    receipts: list[str] = field(default_factory=list)
    ret: int = DAY_MS


class Model:
    """The contract, for one queue without a named dead-letter queue."""

    def __init__(self, fifo: bool, priority: bool):
        self.fifo = fifo
        self.priority = priority and not fifo
        self.messages: dict[str, Message] = {}
        self.seq = 0
        self.retention = DAY_MS

    def live(self, state: str | None = None) -> list[Message]:
        return [m for m in self.messages.values() if m.state != "gone" and (state is None or m.state == state)]

    def settle(self, now: int) -> None:
        """What has happened by ``now``: retention, then ended leases (failed deliveries)."""
        for m in self.live():
            if m.enqueued + m.ret <= now:
                m.state = "gone"
        for m in self.live("inflight"):
            if m.deadline <= now:
                self.fail_delivery(m, now, due=m.deadline, requeue=True)

    def fail_delivery(self, m: Message, now: int, due: int, requeue: bool) -> bool:
        if not requeue or m.attempts >= 1 + MAX_RETRIES:
            m.state, m.dead_at = "dead", now
            return False
        m.state, m.due = "waiting", due
        return True

    def publish(self, mid: str, now: int, delay_ms: int, priority: int, group: str) -> None:
        self.seq += 1
        self.messages[mid] = Message(mid, self.seq, priority, group, now, due=now + delay_ms, ret=self.retention)

    def available(self, now: int) -> list[Message]:
        return [m for m in self.live("waiting") if m.due <= now]

    def claim(self, now: int, max_messages: int) -> list[Message]:
        if not self.fifo:
            order = sorted(self.available(now), key=lambda m: (-m.priority if self.priority else 0, m.seq))
            return order[:max_messages]
        taken: list[Message] = []
        for _, _, line in self.ready_groups(now):
            for m in line:
                if len(taken) == max_messages or m.due > now:
                    break
                taken.append(m)
        return taken

    def ready_groups(self, now: int | None = None) -> list[tuple[int, str, list[Message]]]:
        """FIFO groups with nothing in flight and a waiting head: (head due, group, waiting line)."""
        busy = {m.group for m in self.live("inflight")}
        lines: dict[str, list[Message]] = {}
        for m in sorted(self.live("waiting"), key=lambda m: m.seq):
            lines.setdefault(m.group, []).append(m)
        ready = [(line[0].due, g, line) for g, line in lines.items() if g not in busy]
        ready = [r for r in ready if now is None or r[0] <= now]
        return sorted(ready, key=lambda r: (r[0], r[1]))

    def lease_check(self, mid: str, receipt: str | None) -> type[errors.BrokerError] | None:
        m = self.messages.get(mid)
        if m is None or m.state == "gone":
            return errors.MessageNotFound
        if m.state != "inflight" or (receipt is not None and receipt != m.receipts[-1]):
            return errors.LeaseExpired
        return None

    def dead_letters(self) -> list[Message]:
        return sorted(self.live("dead"), key=lambda m: (m.dead_at, m.id))


class QueueMachine(RuleBasedStateMachine):
    """Drives the real store and the model side by side. Configure with a subclass's class attributes."""

    FIFO = False
    PRIORITY = True

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.redis = aioredis.Redis.from_url(REDIS_URL)
        self.now = 1_800_000_000_000
        self.store = Store(self.redis, Scripts(self.redis, SCRIPTS), lambda: self.now)
        self.project = f"model-{uuid.uuid4().hex[:12]}"
        self.qk = ProjectKeys(self.project).queue(QUEUE)
        self.model = Model(self.FIFO, self.PRIORITY)
        self.ids: list[str] = []

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        async def cleanup() -> None:
            await delete_project(self.redis, self.project)
            await self.store.scripts.close()
            await self.redis.aclose()

        try:
            self.run(cleanup())
        finally:
            self.loop.close()

    @initialize(groups=st.lists(st.sampled_from(["", "a", "b"]), max_size=4))
    def create_queue(self, groups: list[str]) -> None:
        """The queue, with a few messages to start from."""
        request = CreateQueueRequest(name=QUEUE, type="fifo" if self.FIFO else "standard", max_retries=MAX_RETRIES,
                                     message_retention_days=1, visibility_timeout_default=VISIBILITY_MS // 1000,
                                     enable_priority=self.PRIORITY)
        self.run(self.store.create_queue(self.project, request))
        for group in groups:
            self.publish(1, 0, 0, group, 0)

    def pick(self, index: int, among: str) -> str:
        """A message in state ``among`` when there is one, else any message ever published ("any"), or an
        id never published ("unknown")."""
        if among == "unknown":
            return "0" * 19
        candidates = sorted(m.id for m in self.model.live(among)) if among != "any" else []
        pool = candidates or self.ids
        return pool[index % len(pool)]

    # --- operations -------------------------------------------------------------------------------
    @rule(
        count=st.integers(1, 3),
        delay_ms=st.sampled_from([0, 0, 0, 500, 1000, 5000, 20_000]),
        priority=st.sampled_from([0, 0, 1, 5, 9]),
        group=st.sampled_from(["", "", "a", "b"]),
        elapse=ELAPSE,
        skew=st.sampled_from([0, 0, 0, 1, 3000, 60_000]),
    )
    def publish(self, count: int, delay_ms: int, priority: int, group: str, elapse: int | str,
                skew: int = 0) -> None:
        self.elapse(elapse)
        real_now = self.now
        self.now -= skew  # a publisher whose clock is behind
        items = [OutgoingMessage(json.dumps({"i": len(self.ids) + i}).encode(), delay_ms, priority, group or None)
                 for i in range(count)]
        ids = self.run(self.store.publish(self.project, QUEUE, items, batch=count > 1))
        for mid in ids:
            self.model.publish(mid, self.now, delay_ms, priority, group)
        self.ids += ids
        self.now = real_now

    @rule(days=st.sampled_from([1, 1, 2]), elapse=ELAPSE)
    def change_retention(self, days: int, elapse: int | str) -> None:
        self.elapse(elapse)
        self.run(self.store.update_queue(self.project, QUEUE, {"retention_days": days}, None, ""))
        self.model.retention = days * DAY_MS

    @rule(how=st.sampled_from(["ret-next", "ret-before"]))
    def to_retention(self, how: str) -> None:
        """Onto (or 1 ms before) the next retention deadline still ahead."""
        offset = -1 if how == "ret-before" else 0
        ahead = [m.enqueued + m.ret + offset for m in self.model.live() if m.enqueued + m.ret + offset > self.now]
        if ahead:
            self.now = min(ahead)

    @rule(max_messages=st.integers(1, 5), visibility_ms=st.sampled_from([None, None, 0, 1000, 5000, 30_000]),
          elapse=ELAPSE)
    def consume(self, max_messages: int, visibility_ms: int | None, elapse: int | str) -> None:
        self.elapse(elapse)
        self.model.settle(self.now)
        expected = self.model.claim(self.now, max_messages)
        messages, _wake = self.run(self.store.claim(self.project, QUEUE, max_messages, visibility_ms))
        assert [m.message_id for m in messages] == [m.id for m in expected]
        deadline = self.now + (VISIBILITY_MS if visibility_ms is None else visibility_ms)
        for got, m in zip(messages, expected, strict=True):
            m.attempts += 1
            m.deliveries += 1
            m.state, m.deadline = "inflight", deadline
            m.receipts.append(got.receipt)
            assert (got.attempts, got.priority, got.group_id or "") == (m.attempts, m.priority, m.group)
            assert got.receipt not in m.receipts[:-1]

    @precondition(lambda self: self.ids)
    @rule(action=st.sampled_from(["ack", "ack", "nack", "nack", "extend"]), index=st.integers(0, 1000), among=LEASED,
          receipt=RECEIPT, requeue=st.booleans(), delay_ms=st.sampled_from([0, 0, 1000, 5000]),
          visibility_ms=st.sampled_from([0, 1000, 10_000]), elapse=ELAPSE_LEASED)
    def end_or_extend_lease(self, action: str, index: int, among: str, receipt: str, requeue: bool, delay_ms: int,
                            visibility_ms: int, elapse: int | str) -> None:
        """ack, nack (requeue after delay_ms, or dead-letter) or extend (by visibility_ms) a message."""
        mid = self.pick(index, among)
        self.elapse(elapse)
        given = self.receipt_for(mid, receipt)
        self.model.settle(self.now)
        refused = self.model.lease_check(mid, given)
        m = self.model.messages.get(mid)
        if action == "ack":
            self.expect(refused, self.store.ack(self.project, QUEUE, [(mid, given)]))
            if m and refused is None:
                m.state = "gone"
        elif action == "nack":
            call = self.store.nack(self.project, QUEUE, mid, receipt=given, requeue=requeue, delay_ms=delay_ms)
            requeued = self.expect(refused, call)
            if m and refused is None:
                assert requeued == self.model.fail_delivery(m, self.now, self.now + delay_ms, requeue)
        else:
            reply = self.expect(refused, self.store.extend(self.project, QUEUE, mid, given, visibility_ms))
            if m and refused is None:
                m.deadline = self.now + visibility_ms
                assert reply == (m.receipts[-1], m.deadline)

    @rule(how=st.sampled_from(["all", "all", 1, 2, "one", "one", "any"]), index=st.integers(0, 1000), elapse=ELAPSE)
    def redrive(self, how: int | str, index: int, elapse: int | str) -> None:
        """Redrive all dead letters, the oldest 1 or 2, or one by id (a dead letter, or any message)."""
        mid = self.pick(index, "dead" if how == "one" else "any") if how in ("one", "any") and self.ids else None
        self.elapse(elapse)
        self.model.settle(self.now)
        if mid is not None:
            m = self.model.messages[mid]
            call = self.store.redrive(self.project, QUEUE, message_id=mid, since_ms=None, max_messages=None,
                                      idempotency_key=None, fp="")
            if m.state != "dead":
                self.expect(errors.MessageNotFound, call)
                return
            chosen = [m]
        else:
            max_messages = how if isinstance(how, int) else None
            chosen = self.model.dead_letters()[:max_messages]
            call = self.store.redrive(self.project, QUEUE, message_id=None, since_ms=None, max_messages=max_messages,
                                      idempotency_key=None, fp="")
        assert self.run(call) == len(chosen)
        for m in chosen:
            m.state, m.attempts, m.due, m.ret = "waiting", 0, self.now, self.model.retention

    @rule(elapse=ELAPSE, now=st.integers(0, 3))
    def purge(self, elapse: int | str, now: int) -> None:
        if now:  # purge empties the queue: keep it rarer than the other operations
            return
        self.elapse(elapse)
        self.model.settle(self.now)
        doomed = self.model.live("waiting") + self.model.live("inflight")
        assert self.run(self.store.purge(self.project, QUEUE, None, "")) == len(doomed)
        for m in doomed:
            m.state = "gone"

    @rule(how=st.sampled_from([1, 500, 1000, 5000, 10_000, 30_000, "next", "just-before", "retention"]),
          now=st.integers(0, 3))
    def advance(self, how: int | str, now: int) -> None:
        if how != "retention":
            self.elapse(how)
        elif not now:  # retention empties the queue: keep it rare
            self.elapse(DAY_MS - 30_000)

    # --- helpers ----------------------------------------------------------------------------------
    def elapse(self, how: int | str) -> None:
        """Advance by ``how`` ms, or onto ("next") / 1 ms before ("just-before") the next lease deadline or
        due time still ahead."""
        if isinstance(how, int):
            self.now += how
            return
        offset = -1 if how == "just-before" else 0
        upcoming = [m.deadline for m in self.model.live("inflight")] + [m.due for m in self.model.live("waiting")]
        ahead = [t + offset for t in upcoming if t + offset > self.now]
        if ahead:
            self.now = min(ahead)

    def receipt_for(self, mid: str, which: str) -> str | None:
        receipts = self.model.messages[mid].receipts if mid in self.model.messages else []
        if which == "current" and receipts:
            return receipts[-1]
        if which == "stale" and len(receipts) >= 2:
            return receipts[-2]
        return None

    def expect(self, refused: type[errors.BrokerError] | None, call: Coroutine[Any, Any, T]) -> T | None:
        if refused is None:
            return self.run(call)
        with pytest.raises(refused):
            self.run(call)
        return None

    # --- checks after every step --------------------------------------------------------------------
    @invariant()
    def store_matches_model(self) -> None:
        model = self.model
        model.settle(self.now)
        stats = self.run(self.store.stats(self.project, QUEUE))  # also applies what is due in the store
        available = model.available(self.now)
        fronts: dict[int, Message] = {}
        for m in available:  # the store's definition: the lowest sequence of each priority band
            band = m.priority if model.priority else 0
            if band not in fronts or m.seq < fronts[band].seq:
                fronts[band] = m
        oldest = min((m.enqueued for m in fronts.values()), default=None)
        assert (stats.available, stats.in_flight, stats.delayed, stats.dlq) == (
            len(available), len(model.live("inflight")), len(model.live("waiting")) - len(available),
            len(model.live("dead")))
        assert stats.oldest_age_seconds == (None if oldest is None else (self.now - oldest) // 1000)
        items, _ = self.run(self.store.dlq_list(self.project, QUEUE, None, 1000))
        assert [d.message_id for d in items] == [m.id for m in model.dead_letters()]
        assert [d.attempts for d in items] == [m.deliveries for m in model.dead_letters()]
        self.run(self.check_structures())

    async def check_structures(self) -> None:
        qk, model = self.qk, self.model
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hkeys(qk.msgs)
            pipe.zrange(qk.avail, 0, -1, withscores=True)
            pipe.zrange(qk.delayed, 0, -1, withscores=True)
            pipe.zrange(qk.inflight, 0, -1, withscores=True)
            pipe.zrange(qk.dead, 0, -1)
            pipe.zrange(qk.dlqidx, 0, -1)
            pipe.zrange(qk.expiry, 0, -1)
            pipe.zrange(qk.gq, 0, -1)
            pipe.hgetall(qk.gbusy)
            pipe.zrange(qk.groups, 0, -1, withscores=True)
            pipe.hget(qk.cfg, "band_expiry_ms")
            msgs, avail, delayed, inflight, dead, dlqidx, expiry, gq, gbusy, groups, gate = await pipe.execute()

        def ids(raw: list[Any]) -> set[str]:
            return {(r[0] if isinstance(r, tuple) else r).decode() for r in raw}

        waiting = {m.id for m in model.live("waiting")}
        due = {m.id for m in model.available(self.now)}
        # Each message in exactly one place, and the places are the model's.
        places = [ids(avail), ids(delayed), ids(inflight), ids(dead)]
        assert sum(len(p) for p in places) == len(set().union(*places))
        assert ids(msgs) == {m.id for m in model.live()}
        assert ids(expiry) <= ids(avail)  # available messages kept apart from their band's retention order
        assert ids(avail) == due
        # The band gate: no message in a band of avail (not kept apart) reaches its retention deadline before it.
        in_bands = [k.decode() for k, score in avail if score >= 0]
        if gate is not None and in_bands:
            assert float(gate) <= min(model.messages[i].enqueued + model.messages[i].ret for i in in_bands)
        # Scored by the due time or lease deadline, or the retention deadline when that comes first.
        assert {k.decode(): int(v) for k, v in delayed} == {m.id: min(m.due, m.enqueued + m.ret)
                                                            for m in model.live("waiting") if m.id not in due}
        assert {k.decode(): int(v) for k, v in inflight} == {m.id: min(m.deadline, m.enqueued + m.ret)
                                                             for m in model.live("inflight")}
        assert ids(dead) == {m.id for m in model.live("dead")}
        assert {d.decode().split("\0", 1)[1] for d in dlqidx} == ids(dead)
        if self.FIFO:
            assert {fifo_line_message_id(g) for g in gq} == waiting
            busy: dict[str, int] = {}
            for m in model.live("inflight"):
                busy[m.group] = busy.get(m.group, 0) + 1
            assert {k.decode(): int(v) for k, v in gbusy.items()} == busy
            assert [(g.decode(), int(s)) for g, s in groups] == [(g, d) for d, g, _ in model.ready_groups()]
        else:
            assert gq == [] and gbusy == {} and groups == []


class StandardQueue(QueueMachine):
    FIFO = False
    PRIORITY = True


class FifoQueue(QueueMachine):
    FIFO = True
    PRIORITY = False


@pytest.mark.timeout(900)  # only a failure takes long: shrinking it
def test_standard_queue_follows_the_model() -> None:
    run_state_machine_as_test(StandardQueue, settings=SETTINGS)


@pytest.mark.timeout(900)
def test_fifo_queue_follows_the_model() -> None:
    run_state_machine_as_test(FifoQueue, settings=SETTINGS)
