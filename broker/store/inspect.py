"""Reads for the dashboard (/ui) and the inspection routes: peek at a queue's messages, one message wherever
it is, a queue's per-minute history, and every queue's counts in pages. Each is one read-only script (peek,
peek_message, history, overview): nothing is leased, moved, counted or maintained."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from broker.schemas import (
    HistoryPoint,
    InspectedMessage,
    PeekedMessage,
    QueueOverviewItem,
    rfc3339,
)
from broker.store.keys import ProjectKeys
from broker.store.queues import Store

#: The wire state -> the queue part that holds it (peek.lua).
PEEK_PARTS = {"available": "avail", "delayed": "delayed", "in_flight": "inflight"}
MINUTE_MS = 60_000
#: The overview's rates count the current minute and the ones before it, this many in all (lua/overview.lua).
RECENT_MINUTES = 5


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _peeked(state: str, row: Sequence[Any]) -> PeekedMessage:
    mid, payload, priority, group, attempts, deliveries, enqueued, due, score = row
    return PeekedMessage(
        message_id=_text(mid), payload=msgspec.Raw(payload), priority=int(priority), group_id=_text(group) or None,
        attempts=int(attempts), enqueued_at=rfc3339(int(enqueued)), state=state, deliveries=int(deliveries),
        due_at=rfc3339(int(due)), lease_expires_at=rfc3339(int(float(score))) if state == "in_flight" else None,
    )


class Inspector:
    """The read-only views of one store."""

    def __init__(self, store: Store):
        self.store = store
        self.lua = store.lua

    async def peek(
        self, project: str, queue: str, state: str, after: tuple[int, str] | None, limit: int
    ) -> tuple[list[PeekedMessage], tuple[int, str] | None]:
        """A page of ``queue``'s messages in ``state`` (a key of PEEK_PARTS) and the cursor of the next one."""
        pk = ProjectKeys(project)
        score, member = after if after else ("", "")
        reply = await self.store.scripts.run(
            self.lua.peek, [pk.queue(queue).cfg], [pk.tag, queue, PEEK_PARTS[state], score, member, limit]
        )
        items = [_peeked(state, reply[i : i + 9]) for i in range(3, len(reply), 9)]
        cursor = (int(float(reply[1])), _text(reply[2])) if int(reply[0]) else None
        return items, cursor

    async def message(self, project: str, queue: str, message_id: str) -> InspectedMessage:
        pk = ProjectKeys(project)
        (state, where, mid, payload, priority, group, attempts, deliveries, enqueued, due, lease, dead, reason,
         source, error) = await self.store.scripts.run(
            self.lua.peek_message, [pk.queue(queue).cfg], [pk.tag, queue, message_id]
        )
        state, lease_ms, dead_ms = _text(state), int(float(lease)), int(dead)
        return InspectedMessage(
            message_id=_text(mid), payload=msgspec.Raw(payload), priority=int(priority),
            group_id=_text(group) or None, attempts=int(attempts), enqueued_at=rfc3339(int(enqueued)), state=state,
            deliveries=int(deliveries), due_at=rfc3339(int(due)),
            lease_expires_at=rfc3339(lease_ms) if lease_ms >= 0 else None, queue=queue, held_in=_text(where),
            dead_lettered_at=rfc3339(dead_ms) if dead_ms >= 0 else None, reason=_text(reason) or None,
            source_queue=_text(source) or None, last_error=_text(error) or None,
        )

    async def history(self, project: str, queue: str, minutes: int) -> list[HistoryPoint]:
        """One point per minute of the last ``minutes`` (the current one last). The counts are what the scripts
        added in that minute; ``depth`` is the depth as the minute's first change left it, carried over the
        minutes with none (null before the first one kept), and the depth now for the current minute."""
        pk = ProjectKeys(project)
        reply = await self.store.scripts.run(self.lua.history, [pk.queue(queue).cfg], [pk.tag, queue])
        depth_now = int(reply[0])
        fields: dict[str, int] = {}
        for i in range(1, len(reply) - 1, 2):
            fields[_text(reply[i])] = int(reply[i + 1])
        current = self.store.clock() // MINUTE_MS
        first = current - minutes + 1
        depth: int | None = None
        before = [(int(name[:-2]), value) for name, value in fields.items()
                  if name.endswith(":d") and int(name[:-2]) < first]
        if before:
            depth = max(before)[1]  # the newest sample before the window: where the window starts

        def count(m: str, code: str) -> int:
            """A minute's count: folded into the counters ("m:c") or not yet, the open minute ("m+c")."""
            return fields.get(f"{m}:{code}", 0) + fields.get(f"{m}+{code}", 0)

        points = []
        for minute in range(first, current + 1):
            m = str(minute)
            sampled = fields.get(f"{m}:d")
            if sampled is not None:
                depth = sampled
            points.append(HistoryPoint(
                minute=rfc3339(minute * MINUTE_MS), published=count(m, "p"), acked=count(m, "a"),
                dead_lettered=count(m, "x"), push_success=count(m, "s"), push_failure=count(m, "f"),
                depth=depth_now if minute == current else depth,
            ))
        return points

    async def overview(self, project: str, after: str, limit: int) -> tuple[list[QueueOverviewItem], bool]:
        """A page of the project's queues (name order, after ``after``) with counts and counters, and the
        published and acked rates per minute over the last ``RECENT_MINUTES`` (from the history)."""
        pk = ProjectKeys(project)
        now = self.store.clock()
        reply = await self.store.scripts.run(self.lua.overview, [pk.queues], [pk.tag, now, after, limit])
        # The recent counts cover the minutes before this one in full, and this one up to now.
        recent_span = RECENT_MINUTES - 1 + (now % MINUTE_MS + 1) / MINUTE_MS
        items = []
        for row in reply[1:]:
            name, qtype, available, in_flight, delayed, dead, oldest, *counters = row
            published, acked, dead_lettered, push_success, push_failure, push_dead, published_recent, acked_recent = (
                int(c) for c in counters)
            oldest_ms = int(oldest)
            items.append(QueueOverviewItem(
                queue=_text(name), type=_text(qtype), available=int(available), in_flight=int(in_flight),
                delayed=int(delayed), dlq=int(dead),
                oldest_age_seconds=None if oldest_ms < 0 else max(0, (now - oldest_ms) // 1000),
                published=published, acked=acked, dead_lettered=dead_lettered, push_success=push_success,
                push_failure=push_failure, push_dead_lettered=push_dead,
                published_per_minute=round(published_recent / recent_span, 2),
                acked_per_minute=round(acked_recent / recent_span, 2),
            ))
        return items, bool(int(reply[0]))
