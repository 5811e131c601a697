"""Helpers of the script-level tests: a queue handle bound to a project and a store, so each test reads as
the operations it performs."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from broker.schemas import DeadLetter, QueueMessage, QueueRecord, QueueStats
from broker.store.keys import ProjectKeys
from broker.store.queues import OutgoingMessage, Store


def message(
    payload: Any = None,
    *,
    delay: float = 0,
    priority: int = 0,
    group: str | None = None,
    key: str | None = None,
    fp: str | None = None,
) -> OutgoingMessage:
    """One message to publish; ``delay`` in seconds; ``key`` a per-message idempotency key."""
    body = json.dumps({"n": 0} if payload is None else payload, separators=(",", ":")).encode()
    if key is not None and fp is None:
        fp = f"fp:{body.decode()}:{delay}:{priority}:{group}"
    return OutgoingMessage(body, round(delay * 1000), priority, group, fp or "", key)


@dataclass
class Queue:
    """One queue of the test's project, with the store's operations bound to it."""

    store: Store
    project: str
    name: str

    @property
    def keys(self) -> Any:
        return ProjectKeys(self.project).queue(self.name)

    async def publish(self, *payloads: Any, **kw: Any) -> list[str]:
        """Publish one message per payload (each an int, a dict or an OutgoingMessage), one call."""
        items = [p if isinstance(p, OutgoingMessage) else message({"n": p} if isinstance(p, int) else p, **kw)
                 for p in payloads]
        return await self.store.publish(self.project, self.name, items, batch=len(items) != 1)

    async def publish_one(self, payload: Any = 0, **kw: Any) -> str:
        (mid,) = await self.publish(payload, **kw)
        return mid

    async def claim(self, max_messages: int = 100, visibility: float | None = None) -> list[QueueMessage]:
        visibility_ms = None if visibility is None else round(visibility * 1000)
        messages, _wake = await self.store.claim(self.project, self.name, max_messages, visibility_ms)
        return messages

    async def claim_ids(self, max_messages: int = 100, visibility: float | None = None) -> list[str]:
        return [m.message_id for m in await self.claim(max_messages, visibility)]

    async def ack(self, message_id: str, receipt: str | None = None, **kw: Any) -> list[str]:
        return await self.store.ack(self.project, self.name, [(message_id, receipt)], **kw)

    async def nack(self, message_id: str, **kw: Any) -> bool:
        return await self.store.nack(self.project, self.name, message_id, **kw)

    async def extend(self, message_id: str, visibility: float, receipt: str | None = None) -> tuple[str, int]:
        return await self.store.extend(self.project, self.name, message_id, receipt, round(visibility * 1000))

    async def stats(self) -> QueueStats:
        return await self.store.stats(self.project, self.name)

    async def counts(self) -> tuple[int, int, int, int]:
        """(available, in_flight, delayed, dlq)."""
        s = await self.stats()
        return s.available, s.in_flight, s.delayed, s.dlq

    async def dlq(self, limit: int = 1000) -> list[DeadLetter]:
        items, _cursor = await self.store.dlq_list(self.project, self.name, None, limit)
        return items

    async def dlq_ids(self) -> list[str]:
        return [d.message_id for d in await self.dlq()]

    async def redrive(
        self,
        message_id: str | None = None,
        *,
        since_ms: int | None = None,
        max_messages: int | None = None,
        idempotency_key: str | None = None,
        fp: str = "",
    ) -> int:
        return await self.store.redrive(
            self.project, self.name, message_id=message_id, since_ms=since_ms, max_messages=max_messages,
            idempotency_key=idempotency_key, fp=fp,
        )

    async def purge(self, idempotency_key: str | None = None, fp: str = "") -> int:
        return await self.store.purge(self.project, self.name, idempotency_key, fp)

    async def record(self) -> QueueRecord:
        return await self.store.get_queue(self.project, self.name)

    async def fail_until_dead(self, message_id: str, deliveries: int) -> None:
        """Claim and nack (requeue) ``deliveries`` times; the message must be the only one available."""
        for _ in range(deliveries):
            assert await self.claim_ids() == [message_id]
            await self.nack(message_id)


def ids_of(items: Sequence[QueueMessage | DeadLetter]) -> list[str]:
    return [m.message_id for m in items]


MakeQueue = Callable[..., Awaitable[Queue]]
