"""What the SQS edge (``broker.sqs``) needs of the store beyond :class:`~broker.store.queues.Store`: a queue's
configuration with its SQS-only attributes in one read, those attributes and tags written by one script, the
names of a project's queues by prefix, the queues that name one as dead-letter queue, and a claim that also
returns what the edge stored with each message (its ``extra`` bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from broker import errors
from broker.store.failures import answered
from broker.store.keys import ProjectKeys
from broker.store.queues import MAINTENANCE_LIMIT, Store

_CFG_FIELDS = ("type", "dlq", "max_retries", "retention_days", "visibility", "priority", "created_ms")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class QueueInfo(msgspec.Struct, frozen=True, gc=False):
    """A queue's native configuration and its SQS-only attributes (the ``sqs`` part: attribute -> value,
    tags as ``tag:<key>``)."""

    name: str
    type: str
    dead_letter_queue: str
    max_retries: int
    retention_days: int
    visibility_seconds: int
    created_ms: int
    sqs: dict[str, str]

    @property
    def fifo(self) -> bool:
        return self.type == "fifo"


class Delivery(msgspec.Struct, frozen=True, gc=False):
    """One message leased by :meth:`SqsStore.claim`."""

    message_id: str
    payload: bytes
    group_id: str | None
    attempts: int
    receipt: str
    extra: bytes


class SqsStore:
    """The SQS edge's store calls; ``store`` is the shared :class:`Store` (its Redis, scripts and clock)."""

    def __init__(self, store: Store):
        self.store = store
        self.redis = store.redis

    async def queue(self, project: str, name: str) -> QueueInfo:
        """The queue ``name``, or raise ``QueueNotFound``."""
        qk = ProjectKeys(project).queue(name)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(qk.cfg, *_CFG_FIELDS)
            pipe.hgetall(qk.sqs)
            cfg, sqs = await answered(pipe.execute())
        if cfg[0] is None:
            raise errors.QueueNotFound(f"queue '{name}' does not exist", field="queue")
        qtype, dlq, max_retries, retention, visibility, _, created = cfg
        return QueueInfo(
            name=name, type=_text(qtype), dead_letter_queue=_text(dlq or b""), max_retries=int(max_retries),
            retention_days=int(retention), visibility_seconds=int(visibility), created_ms=int(created),
            sqs={_text(k): _text(v) for k, v in sqs.items()},
        )

    async def set_attributes(self, project: str, name: str, values: dict[str, str], remove: Sequence[str]) -> None:
        """Set ``values`` and remove ``remove`` in the queue's SQS-only attributes (sqs_attributes.lua)."""
        pk = ProjectKeys(project)
        args: list[Any] = [pk.tag, name, len(values)]
        for field, value in values.items():
            args += [field, value]
        args += list(remove)
        await self.store.scripts.run(self.store.lua.sqs_attributes, [pk.queue(name).cfg], args)

    async def names(self, project: str, prefix: str, after: str, limit: int) -> tuple[list[str], bool]:
        """Up to ``limit`` queue names starting with ``prefix``, after ``after``; and whether more follow."""
        key = ProjectKeys(project).queues
        start = "(" + after if after else "[" + prefix
        end = "[" + prefix + "\xff" if prefix else "+"
        found = [_text(n) for n in await answered(self.redis.zrangebylex(key, start, end, 0, limit + 1))]
        found = [n for n in found if n.startswith(prefix)]
        return found[:limit], len(found) > limit

    async def dead_letter_sources(self, project: str, name: str) -> list[str]:
        """The queues whose dead-letter queue is ``name`` (its ``refs``, without push subscriptions)."""
        refs = await answered(self.redis.smembers(ProjectKeys(project).queue(name).refs))
        return sorted(n for n in (_text(r) for r in refs) if not n.startswith("sub:"))

    async def claim(
        self, project: str, queue: str, max_messages: int, visibility_ms: int | None, *, charged: bool = True
    ) -> tuple[list[Delivery], int]:
        """Lease up to ``max_messages`` (claim.lua, as :meth:`Store.claim`, charged as it is), with each message's
        extra bytes; also returns when something may next become available (ms, -1)."""
        pk = ProjectKeys(project)
        reply = await self.store.scripts.run(
            self.store.lua.claim,
            [pk.queue(queue).cfg, pk.account if charged else pk.tag],
            [pk.tag, queue, self.store.clock(), max_messages, "" if visibility_ms is None else visibility_ms,
             MAINTENANCE_LIMIT, self.store.receipt_key],
        )
        found = []
        for i in range(3, len(reply), 7):  # {wake, deadline, acks, messages...}: claim.lua
            mid, payload, _, group, attempts, receipt, extra = reply[i : i + 7]
            found.append(Delivery(_text(mid), bytes(payload), _text(group) or None, int(attempts), _text(receipt),
                                  bytes(extra)))
        return found, int(reply[0])
