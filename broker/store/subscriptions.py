"""Store methods for push subscriptions and push delivery outcomes (one script call each, like
:class:`broker.store.queues.Store`, whose client, scripts and clock they share).

A queue's subscription lives in its ``sub`` hash and its delivery state in ``subst`` (see
``lua/include/push.lua``). The delivery loop finds subscribed queues through a per-project index set,
named by :func:`subscriptions_index`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import msgspec

from broker import errors
from broker.schemas import PUSH_LOG_SIZE, PushAttempt, PushSubscription, PushSubscriptionInfo, rfc3339
from broker.store.failures import answered
from broker.store.keys import PROJECTS, ProjectKeys
from broker.store.queues import Store


def subscriptions_index(project: str) -> str:
    """The set of the project's queue names that have a push subscription (``v1:{P}:subs``)."""
    return ProjectKeys(project).subscriptions


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_Outcome = Literal["success", "failure", "dead_lettered"]
_LOG_ENTRY = msgspec.msgpack.Decoder(tuple[int, str, int, _Outcome, int, str, int])


def _attempt(raw: bytes) -> PushAttempt:
    """One entry of a subscription's log of attempts (lua/include/push.lua)."""
    at_ms, message_id, attempt, outcome, status, error, duration_ms = _LOG_ENTRY.decode(raw)
    return PushAttempt(at=rfc3339(at_ms), message_id=message_id, attempt=attempt, outcome=outcome,
                       status=status or None, error=error or None, duration_ms=duration_ms)


@dataclass(frozen=True, slots=True)
class ActiveSubscription:
    """What the delivery loop needs to know about one subscription."""

    project: str
    queue: str
    generation: int
    url: str
    secret: str
    visibility_s: int
    max_concurrency: int
    disabled: bool
    fifo: bool = False


@dataclass(frozen=True, slots=True)
class SubscribeArgs:
    url: str
    secret: str | None
    max_retries: int | None
    visibility_s: int
    dead_letter_queue: str | None
    max_concurrency: int


class PushAcked(NamedTuple):
    acked: bool  # the message was deleted (False: the push lease had ended)
    recorded: bool  # the attempt is in the delivery state (False: the subscription was replaced or removed)


class SubscriptionStore:
    """Push subscription operations; ``store`` provides the Redis client, scripts and clock."""

    def __init__(self, store: Store):
        self.store = store
        self.redis = store.redis
        self.scripts = store.scripts

    def _now(self) -> int:
        return self.store.clock()

    async def subscribe(
        self,
        project: str,
        queue: str,
        args: SubscribeArgs,
        *,
        new_id: str,
        idempotency_key: str | None = None,
        fp: str = "",
    ) -> PushSubscription:
        pk = ProjectKeys(project)
        reply = await self.scripts.run(
            self.scripts.lua.subscribe,
            [
                pk.queue(queue).cfg,
                pk.idempotency("queue.push_subscribe", idempotency_key),
                subscriptions_index(project),
                pk.account,
            ],
            [pk.tag, queue, self._now(), fp, new_id, args.url, args.secret or "",
             "" if args.max_retries is None else args.max_retries, args.visibility_s,
             args.dead_letter_queue or "", args.max_concurrency],
        )
        return PushSubscription(subscription_id=_text(reply[0]), queue=queue, url=_text(reply[1]))

    async def unsubscribe(self, project: str, queue: str) -> str:
        """Remove the subscription; its id."""
        pk = ProjectKeys(project)
        reply = await self.scripts.run(
            self.scripts.lua.unsubscribe, [pk.queue(queue).cfg, subscriptions_index(project)], [pk.tag, queue]
        )
        return _text(reply)

    async def get(self, project: str, queue: str) -> PushSubscriptionInfo:
        """The subscription (without its secret) and its delivery state."""
        qk = ProjectKeys(project).queue(queue)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.exists(qk.cfg)
            pipe.hgetall(qk.sub)
            pipe.hgetall(qk.subst)
            pipe.lrange(qk.pushlog, 0, PUSH_LOG_SIZE - 1)
            exists, sub_raw, state_raw, log = await answered(pipe.execute())
        if not exists:
            raise errors.QueueNotFound(f"queue '{queue}' does not exist", field="queue")
        sub = {_text(k): _text(v) for k, v in sub_raw.items()}
        if not sub.get("id"):
            raise errors.SubscriptionNotFound(f"queue '{queue}' has no push subscription", field="queue")
        state = {_text(k): _text(v) for k, v in state_raw.items()}
        last_attempt = state.get("last_attempt_ms")
        status = int(state.get("last_status") or 0)
        return PushSubscriptionInfo(
            subscription_id=sub["id"],
            queue=queue,
            url=sub["url"],
            signed=bool(sub.get("secret")),
            max_retries=int(sub["max_retries"]) if sub.get("max_retries") else None,
            visibility_timeout=int(sub["visibility"]),
            dead_letter_queue=sub.get("dead_letter_queue") or None,
            max_concurrency=int(sub["max_concurrency"]),
            created_at=rfc3339(int(sub["created_ms"])),
            updated_at=rfc3339(int(sub["updated_ms"])),
            last_attempt_at=rfc3339(int(last_attempt)) if last_attempt else None,
            last_status=status or None,
            last_error=state.get("last_error") or None,
            consecutive_failures=int(state.get("consecutive_failures") or 0),
            disabled=state.get("disabled") == "1",
            recent_attempts=[_attempt(entry) for entry in log],
        )

    async def projects(self) -> list[str]:
        """Every project that has queues."""
        return sorted(_text(p) for p in await answered(self.redis.smembers(PROJECTS)))

    async def active(self, projects: Iterable[str]) -> list[ActiveSubscription]:
        """The subscriptions of ``projects`` (disabled ones included, flagged)."""
        names = list(projects)
        async with self.redis.pipeline(transaction=False) as pipe:
            for project in names:
                pipe.scard(subscriptions_index(project))
            counts = await answered(pipe.execute())
        found: list[ActiveSubscription] = []
        for project, count in zip(names, counts, strict=True):
            if not count:
                continue
            reply = await self.scripts.run(
                self.scripts.lua.list_subscriptions, [subscriptions_index(project)], [ProjectKeys(project).tag]
            )
            for i in range(0, len(reply), 8):
                queue, generation, url, secret, visibility, concurrency, disabled, fifo = reply[i : i + 8]
                found.append(
                    ActiveSubscription(
                        project=project,
                        queue=_text(queue),
                        generation=int(generation),
                        url=_text(url),
                        secret=_text(secret),
                        visibility_s=int(visibility),
                        max_concurrency=int(concurrency),
                        disabled=bool(int(disabled)),
                        fifo=bool(int(fifo)),
                    )
                )
        return found

    async def push_ack(
        self, sub: ActiveSubscription, message_id: str, receipt: str, status: int, *, attempt: int, duration_ms: int
    ) -> PushAcked:
        """Settle a 2xx attempt in one step: record it in the delivery state and its log (when ``sub`` is still
        the queue's subscription) and delete the message if the push lease is still held (push_ack.lua).
        ``attempt``: the message's delivery attempt this was; ``duration_ms``: how long it took."""
        pk = ProjectKeys(sub.project)
        acked, recorded = await self.scripts.run(
            self.scripts.lua.push_ack,
            [pk.queue(sub.queue).cfg],
            [pk.tag, sub.queue, self._now(), message_id, receipt, status, sub.generation, attempt, duration_ms],
        )
        return PushAcked(acked=bool(int(acked)), recorded=bool(int(recorded)))

    async def fail(
        self,
        sub: ActiveSubscription,
        message_id: str,
        receipt: str,
        *,
        delay_ms: int,
        status: int | None,
        error: str,
        duration_ms: int,
    ) -> str:
        """End a failed attempt: retry after ``delay_ms``, dead-letter (push_failed) when the retries
        are used up, or on 410 Gone disable the subscription; the attempt goes into the subscription's log
        with its ``duration_ms``. Returns "requeued" or "dead_lettered"."""
        pk = ProjectKeys(sub.project)
        reply: Sequence[Any] = await self.scripts.run(
            self.scripts.lua.push_fail,
            [pk.queue(sub.queue).cfg],
            [pk.tag, sub.queue, self._now(), message_id, receipt, delay_ms, status or 0, error, sub.generation,
             "1" if status == 410 else "0", duration_ms],
        )
        return _text(reply[1])
