"""The store: the only code that knows Redis. One method per operation, each one script call (one
round trip). Routes and background jobs both call these methods.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import msgspec
from redis import exceptions as redis_errors

from broker.schemas import (
    AckFailure,
    CreateQueueRequest,
    DeadLetter,
    NackedItem,
    NackItem,
    QueueMessage,
    QueueRecord,
    QueueStats,
    rfc3339,
)
from broker.store.failures import answered
from broker.store.keys import PROJECTS, ProjectKeys
from broker.store.scripts import Script, Scripts

MAINTENANCE_LIMIT = 1000
QUEUE_PAGE = 500
METRICS_PAGE = 200
_encode = msgspec.json.Encoder(order="sorted").encode


def now_ms() -> int:
    return int(time.time() * 1000)


def fingerprint(capability: str, request: Any) -> str:
    """A digest of a request without its idempotency key: equal requests give equal fingerprints."""
    body = msgspec.to_builtins(request)
    if isinstance(body, dict):
        body.pop("idempotency_key", None)
    return hashlib.sha256(capability.encode() + b"\0" + _encode(body)).hexdigest()


def fifo_line_message_id(member: bytes) -> str:
    """The message id of a member of a FIFO queue's waiting line (the ``gq`` part): ``group \\0 seq ms``,
    the sequence and the enqueued ms in 11 hex digits each (``fifo_member`` in lua/include/message.lua)."""
    seq = int(member[-22:-11], 16)
    return f"{member[-11:].decode()}{seq % 2**32:08x}"


def message_enqueued_ms(message_id: str) -> int:
    """When a message was first published: the first 11 hex digits of its id (``new_message_id`` in
    lua/include/message.lua)."""
    return int(message_id[:11], 16)


#: Offered to claim as the queue's receipt key when it has none yet (lease_receipt in lua/include/message.lua).
_RECEIPT_KEY = secrets.token_hex(16)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _record(reply: Sequence[Any]) -> QueueRecord:
    name, qtype, dlq, max_retries, retention, visibility, priority, created_ms = reply
    return QueueRecord(
        queue=_text(name),
        type=_text(qtype),
        dead_letter_queue=_text(dlq) or None,
        max_retries=int(max_retries),
        message_retention_days=int(retention),
        visibility_timeout_default=int(visibility),
        enable_priority=bool(int(priority)),
        created_at=rfc3339(int(created_ms)),
    )


def _leased(reply: Sequence[Any]) -> list[QueueMessage]:
    """The messages of a claim.lua reply: {next_wake_ms, lease_deadline_ms, acks, [id, payload, priority, group,
    attempts, receipt, extra]...} (extra: see the SQS store's claim)."""
    messages = []
    lease_expires_at = rfc3339(int(reply[1])) if len(reply) > 3 else ""
    for i in range(3, len(reply), 7):
        mid, payload, priority, group, attempts, receipt, _ = reply[i : i + 7]
        message_id = _text(mid)
        messages.append(
            QueueMessage(
                message_id=message_id,
                payload=msgspec.Raw(payload),
                priority=int(priority),
                group_id=_text(group) or None,
                attempts=int(attempts),
                enqueued_at=rfc3339(message_enqueued_ms(message_id)),
                receipt=_text(receipt),
                lease_expires_at=lease_expires_at,
            )
        )
    return messages


class OutgoingMessage(msgspec.Struct, frozen=True, gc=False):
    """One message to publish, validated and encoded."""

    payload: bytes
    delay_ms: int = 0
    priority: int = 0
    group_id: str | None = None
    fingerprint: str = ""
    idempotency_key: str | None = None
    extra: bytes = b""  # kept with the message, returned by claim_extras (the SQS edge's attributes)


class QueueMetrics(msgspec.Struct, frozen=True, gc=False):
    """What /metrics reports of one queue: its depth by state, its oldest available message, and its message
    counters (totals since the queue was created, kept in Redis by the scripts)."""

    project: str
    queue: str
    available: int
    in_flight: int
    delayed: int
    dead_letter: int
    oldest_enqueued_ms: int | None
    published: int
    delivered: int
    acked: int
    nacked: int
    lease_expired: int
    dead_lettered: int
    redriven: int
    purged: int
    push_success: int
    push_failure: int
    push_dead_lettered: int


class Store:
    """Queue operations of one Redis; ``clock`` returns epoch ms (tests drive it)."""

    def __init__(self, redis: Any, scripts: Scripts | None = None, clock: Callable[[], int] = now_ms):
        self.redis = redis
        self.scripts = scripts or Scripts(redis)
        self.lua = self.scripts.lua
        self.clock = clock
        self.receipt_key = _RECEIPT_KEY  # offered to claim (lua/claim.lua, ARGV[7])

    def _run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Awaitable[Any]:
        return self.scripts.run(script, keys, args)

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (redis_errors.RedisError, OSError):
            return False

    # --- queues -----------------------------------------------------------------------------------
    async def create_queue(self, project: str, req: CreateQueueRequest) -> tuple[QueueRecord, bool]:
        pk = ProjectKeys(project)
        qk = pk.queue(req.name)
        fp = fingerprint("queue.create", req) if req.idempotency_key else ""
        # The global registry of projects (what the background jobs sweep) is in another Cluster slot than the
        # project's keys, so it cannot be written by the same script. It is written first: it then always
        # covers every project that has queues (a project in it without queues costs one empty lookup).
        await answered(self.redis.sadd(PROJECTS, project))
        reply = await self._run(
            self.lua.create_queue,
            [qk.cfg, pk.queues, pk.idempotency("queue.create", req.idempotency_key), pk.account],
            [pk.tag, req.name, self.clock(), fp, req.type, req.dead_letter_queue or "", req.max_retries,
             req.message_retention_days, req.visibility_timeout_default, int(req.enable_priority)],
        )
        return _record(reply[1:]), bool(reply[0])

    async def get_queue(self, project: str, name: str) -> QueueRecord:
        pk = ProjectKeys(project)
        reply = await self._run(self.lua.get_queue, [pk.queue(name).cfg, pk.account], [pk.tag, name, self.clock()])
        return _record(reply)

    async def list_queues(self, project: str, after: str, limit: int) -> tuple[list[QueueRecord], bool]:
        pk = ProjectKeys(project)
        reply = await self._run(self.lua.list_queues, [pk.queues, pk.account], [pk.tag, after, limit, self.clock()])
        return [_record(r) for r in reply[1:]], bool(reply[0])

    async def update_queue(
        self, project: str, name: str, changes: dict[str, Any], idempotency_key: str | None, fp: str
    ) -> QueueRecord:
        pk = ProjectKeys(project)
        args: list[Any] = [pk.tag, name, fp, self.clock()]
        for field, value in changes.items():
            args += [field, value]
        reply = await self._run(
            self.lua.update_queue,
            [pk.queue(name).cfg, pk.idempotency("queue.update", idempotency_key), pk.account], args
        )
        return _record(reply)

    async def delete_queue(self, project: str, name: str) -> bool:
        pk = ProjectKeys(project)
        return bool(
            await self._run(self.lua.delete_queue, [pk.queue(name).cfg, pk.queues, pk.subscriptions, pk.account],
                            [pk.tag, name, self.clock()])
        )

    async def purge(self, project: str, name: str, idempotency_key: str | None, fp: str) -> int:
        pk = ProjectKeys(project)
        reply = await self._run(
            self.lua.purge,
            [pk.queue(name).cfg, pk.idempotency("queue.purge", idempotency_key), pk.account],
            [pk.tag, name, self.clock(), fp],
        )
        return int(reply[0])

    async def stats(self, project: str, name: str) -> QueueStats:
        pk = ProjectKeys(project)
        now = self.clock()
        available, in_flight, delayed, dlq, oldest = await self._run(
            self.lua.stats, [pk.queue(name).cfg, pk.account], [pk.tag, name, now, MAINTENANCE_LIMIT]
        )
        return QueueStats(
            queue=name,
            available=int(available),
            in_flight=int(in_flight),
            dlq=int(dlq),
            delayed=int(delayed),
            oldest_age_seconds=None if int(oldest) < 0 else max(0, (now - int(oldest)) // 1000),
        )

    # --- maintenance --------------------------------------------------------------------------------
    async def projects(self) -> list[str]:
        """Every project that has (or had) queues: the registry the background jobs sweep."""
        return sorted({_text(p) async for p in self.redis.sscan_iter(PROJECTS, count=1000)})

    async def queue_names(self, project: str) -> AsyncIterator[str]:
        """The project's queue names, in pages (the index is scored 0, so lexicographic ranges page it)."""
        key = ProjectKeys(project).queues
        start = "-"
        while True:
            page = [_text(n) for n in await answered(self.redis.zrangebylex(key, start, "+", 0, QUEUE_PAGE))]
            for name in page:
                yield name
            if len(page) < QUEUE_PAGE:
                return
            start = "(" + page[-1]

    async def maintain(self, project: str, queue: str, limit: int = MAINTENANCE_LIMIT) -> int:
        """Bounded maintenance of one queue (maintain.lua): how many messages it moved or deleted."""
        pk = ProjectKeys(project)
        return int(await self._run(self.lua.maintain, [pk.queue(queue).cfg], [pk.tag, queue, self.clock(), limit]))

    async def queue_metrics(self, project: str, page: int = METRICS_PAGE) -> list[QueueMetrics]:
        """Depth, oldest message and counters of every queue of ``project`` (queue_metrics.lua, read-only),
        ``page`` queues per call."""
        pk = ProjectKeys(project)
        found: list[QueueMetrics] = []
        after = ""
        now = self.clock()
        while True:
            reply = await self._run(self.lua.queue_metrics, [pk.queues], [pk.tag, now, after, page])
            for row in reply[1:]:
                available, in_flight, delayed, dead, oldest, *counters = (int(v) for v in row[1:])
                (published, delivered, acked, nacked, expired, dead_lettered, redriven, purged, push_success,
                 push_failure, push_dead_lettered) = counters
                found.append(QueueMetrics(
                    project=project, queue=_text(row[0]), available=available, in_flight=in_flight,
                    delayed=delayed, dead_letter=dead, oldest_enqueued_ms=None if oldest < 0 else oldest,
                    published=published, delivered=delivered, acked=acked, nacked=nacked, lease_expired=expired,
                    dead_lettered=dead_lettered, redriven=redriven, purged=purged, push_success=push_success,
                    push_failure=push_failure, push_dead_lettered=push_dead_lettered,
                ))
            if not int(reply[0]) or len(reply) == 1:
                return found
            after = found[-1].queue

    # --- messages ---------------------------------------------------------------------------------
    async def publish(
        self,
        project: str,
        queue: str,
        messages: Sequence[OutgoingMessage],
        *,
        batch: bool,
        idempotency_key: str | None = None,
        fp: str = "",
    ) -> list[str]:
        pk = ProjectKeys(project)
        capability = "queue.publish_batch" if batch else "queue.publish"
        keys = [pk.queue(queue).cfg, pk.seq, pk.idempotency(capability, idempotency_key), pk.account]
        # The payloads, then only the columns where some message differs from the default (lua/publish.lua).
        names = ""
        columns: list[list[Any]] = []
        if len(messages) == 1:  # the common single publish, without building four lists
            m = messages[0]
            for name, value in (("d", m.delay_ms), ("p", m.priority), ("g", m.group_id), ("f", m.fingerprint),
                                ("x", m.extra)):
                if value:
                    names += name
                    columns.append([value])
        else:
            for name, values in (
                ("d", [m.delay_ms for m in messages]),
                ("p", [m.priority for m in messages]),
                ("g", [m.group_id or "" for m in messages]),
                ("f", [m.fingerprint for m in messages]),
                ("x", [m.extra for m in messages]),
            ):
                if any(values):
                    names += name
                    columns.append(values)
        args: list[Any] = [pk.tag, queue, self.clock(), fp, "messages" if batch else "", len(messages), names]
        args += [m.payload for m in messages]
        for values in columns:
            args += values
        for m in messages:
            if m.fingerprint:  # only messages with a fingerprint have a record among the KEYS, in order
                keys.append(pk.idempotency("queue.publish", m.idempotency_key))
        reply = await self._run(self.lua.publish, keys, args)
        return [_text(i) for i in reply]

    async def claim(
        self, project: str, queue: str, max_messages: int, visibility_ms: int | None, *, charged: bool = True
    ) -> tuple[list[QueueMessage], int]:
        """Lease up to ``max_messages``; also returns when something may next become available (ms, -1).
        ``charged``: the call is charged to the project's credit (not a long poll's later attempts, nor push
        delivery); the messages it delivers are metered either way."""
        reply = await self._claim(project, queue, max_messages, visibility_ms, charged, None)
        return _leased(reply), int(reply[0])

    async def ack_and_claim(
        self, project: str, queue: str, acks: Sequence[tuple[str, str | None]], max_messages: int,
        visibility_ms: int | None, nacks: Sequence[NackItem] = (),
    ) -> tuple[list[QueueMessage], int, list[str], list[AckFailure], list[NackedItem]]:
        """Ack each of ``acks`` (message id, receipt) that is leased under its receipt, then nack each of
        ``nacks`` that is, then lease up to ``max_messages`` (one claim.lua call, charged, the acks priced as an
        ack_batch call and each nack as a nack call): the messages, the next wake (as :meth:`claim`), the ids
        acked, the items that were not applied and the messages nacked."""
        reply = await self._claim(project, queue, max_messages, visibility_ms, True, acks, nacks)
        ids, failures, nacked = reply[2]
        failed = [AckFailure(message_id=_text(failures[i]), code=_text(failures[i + 1]),  # type: ignore[arg-type]
                             message=_text(failures[i + 2])) for i in range(0, len(failures), 3)]
        return (_leased(reply), int(reply[0]), [_text(i) for i in ids], failed,
                [NackedItem(message_id=_text(nacked[i]), requeued=bool(int(nacked[i + 1])))
                 for i in range(0, len(nacked), 2)])

    def _claim(self, project: str, queue: str, max_messages: int, visibility_ms: int | None, charged: bool,
               acks: Sequence[tuple[str, str | None]] | None, nacks: Sequence[NackItem] = ()) -> Awaitable[Any]:
        pk = ProjectKeys(project)
        args: list[Any] = [pk.tag, queue, self.clock(), max_messages, "" if visibility_ms is None else visibility_ms,
                           MAINTENANCE_LIMIT, _RECEIPT_KEY]
        if acks is not None:  # the call settles what it carries (claim.lua ARGV[8..])
            args.append(len(acks))
            for message_id, receipt in acks:
                args += [message_id, receipt or ""]
            for n in nacks:
                args += [n.message_id, n.receipt or "", 1 if n.requeue else 0, round(n.delay_seconds * 1000)]
        return self._run(self.lua.claim, [pk.queue(queue).cfg, pk.account if charged else pk.tag], args)

    async def ack(
        self,
        project: str,
        queue: str,
        items: Sequence[tuple[str, str | None]],
        *,
        field: str = "message_id",
        capability: str = "queue.ack",
        idempotency_key: str | None = None,
        fp: str = "",
    ) -> list[str]:
        pk = ProjectKeys(project)
        args: list[Any] = [pk.tag, queue, self.clock(), fp, field]
        for message_id, receipt in items:
            args += [message_id, receipt or ""]
        reply = await self._run(
            self.lua.ack, [pk.queue(queue).cfg, pk.idempotency(capability, idempotency_key), pk.account], args
        )
        return [_text(i) for i in reply]

    async def nack(
        self,
        project: str,
        queue: str,
        message_id: str,
        *,
        receipt: str | None = None,
        requeue: bool = True,
        delay_ms: int = 0,
        reason: str = "nack",
        error: str = "",
        idempotency_key: str | None = None,
        fp: str = "",
    ) -> bool:
        """End a lease as failed; returns whether the message was requeued (False: dead-lettered)."""
        pk = ProjectKeys(project)
        reply = await self._run(
            self.lua.nack,
            [pk.queue(queue).cfg, pk.idempotency("queue.nack", idempotency_key), pk.account],
            [pk.tag, queue, self.clock(), fp, message_id, receipt or "", int(requeue), delay_ms, reason, error],
        )
        return bool(int(reply[1]))

    async def extend(
        self, project: str, queue: str, message_id: str, receipt: str | None, visibility_ms: int
    ) -> tuple[str, int]:
        pk = ProjectKeys(project)
        reply = await self._run(
            self.lua.extend,
            [pk.queue(queue).cfg, pk.account],
            [pk.tag, queue, self.clock(), message_id, receipt or "", visibility_ms],
        )
        return _text(reply[1]), int(reply[2])

    # --- dead letters -----------------------------------------------------------------------------
    async def dlq_list(
        self, project: str, queue: str, after: tuple[int, str] | None, limit: int
    ) -> tuple[list[DeadLetter], tuple[int, str] | None]:
        pk = ProjectKeys(project)
        score, member = after if after else ("", "")
        reply = await self._run(
            self.lua.dlq_list, [pk.queue(queue).cfg, pk.account], [pk.tag, queue, self.clock(), score, member, limit]
        )
        more, last_score, last_member = int(reply[0]), reply[1], reply[2]
        items = []
        for i in range(3, len(reply), 10):
            mid, payload, priority, group, attempts, enqueued, dead, reason, source, error = reply[i : i + 10]
            items.append(
                DeadLetter(
                    message_id=_text(mid),
                    payload=msgspec.Raw(payload),
                    priority=int(priority),
                    group_id=_text(group) or None,
                    attempts=int(attempts),
                    enqueued_at=rfc3339(int(enqueued)),
                    dead_lettered_at=rfc3339(int(dead)),
                    reason=_text(reason),
                    source_queue=_text(source),
                    last_error=_text(error) or None,
                )
            )
        cursor = (int(last_score), _text(last_member)) if more else None
        return items, cursor

    async def redrive(
        self,
        project: str,
        queue: str,
        *,
        message_id: str | None,
        since_ms: int | None,
        max_messages: int | None,
        idempotency_key: str | None,
        fp: str,
    ) -> int:
        pk = ProjectKeys(project)
        reply = await self._run(
            self.lua.redrive,
            [pk.queue(queue).cfg, pk.idempotency("queue.dlq.redrive", idempotency_key), pk.account],
            [pk.tag, queue, self.clock(), fp, message_id or "", "-inf" if since_ms is None else since_ms,
             "" if max_messages is None else max_messages],
        )
        return int(reply[0])
