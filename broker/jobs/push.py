"""Push delivery: one loop per process finds the subscribed queues; each queue gets its own claim loop
and its deliveries run as separate tasks, so a slow endpoint never stalls another queue. Before leasing,
a claim loop takes slots of its endpoint (broker/push/endpoints.py): the deliveries to one endpoint are
bounded, and shared in turn by the subscriptions that push to it.

A delivery leases its message with ``Store.claim`` for the subscription's visibility timeout, so one
message is delivered by one process at a time; a process that dies mid-delivery leaves a lease that
ends and the message is delivered again. Outcomes: 2xx acks (``Store.ack``); anything else ends the
attempt through ``SubscriptionStore.fail`` (retry with backoff, dead-letter, or disable on 410).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from broker import errors
from broker.push.endpoints import Endpoints, EndpointSlots, origin_of
from broker.push.pool import ENDPOINT_CONNECTIONS
from broker.push.webhooks import WebhookSender, retry_delay_ms
from broker.schemas import MAX_CONSUME, PushMessage, QueueMessage
from broker.store.notify import Notifier
from broker.store.queues import Store
from broker.store.subscriptions import ActiveSubscription, SubscriptionStore
from broker.telemetry.metrics import observe_push
from broker.telemetry.tracing import Tracing

log = logging.getLogger("broker.push")
_encode = msgspec.json.Encoder().encode


def attempt_timeout_s(visibility_s: int) -> float:
    """How long one attempt may take: its lease, minus a margin (a tenth, at most 1 s) to settle it."""
    return visibility_s - min(1.0, visibility_s / 10)


def delivery_body(message: QueueMessage) -> bytes:
    """The JSON body of a push: the consumed message without its receipt."""
    return _encode(
        PushMessage(
            message_id=message.message_id,
            payload=message.payload,
            priority=message.priority,
            group_id=message.group_id,
            attempts=message.attempts,
            enqueued_at=message.enqueued_at,
            lease_expires_at=message.lease_expires_at,
        )
    )


class QueuePusher:
    """The claim loop of one subscribed queue in this process, and its deliveries in flight."""

    def __init__(self, dispatcher: PushDispatcher, sub: ActiveSubscription):
        self.dispatcher = dispatcher
        self.sub = sub
        self.deliveries: set[asyncio.Task[None]] = set()
        self.slot_freed = asyncio.Event()
        self.stopped = False
        self._pausing = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"push:{self.sub.project}/{self.sub.queue}")

    @property
    def finished(self) -> bool:
        return self.task is not None and self.task.done()

    async def stop_claiming(self) -> None:
        """Claim nothing more; deliveries in flight go on. A claim in progress completes first (its
        messages are delivered), so no lease is taken and then forgotten."""
        self.stopped = True
        if self.task is None:
            return
        if self._pausing:
            self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _pause(self, wait: Callable[[], Awaitable[Any]]) -> None:
        """A wait that stop_claiming may cut short."""
        if self.stopped:
            return
        self._pausing = True
        try:
            with contextlib.suppress(TimeoutError):
                await wait()
        finally:
            self._pausing = False

    async def _run(self) -> None:
        d = self.dispatcher
        while not self.stopped:
            sub = self.sub
            free = min(sub.max_concurrency - len(self.deliveries), MAX_CONSUME)
            if free <= 0:
                self.slot_freed.clear()
                await self._pause(lambda: asyncio.wait_for(self.slot_freed.wait(), d.poll_interval))
                continue
            slots = d.endpoints.slots(sub.url)
            granted = await self._acquire(slots, free)
            if not granted:
                continue
            try:
                messages, wake_ms = await self._claim(sub, granted)
            except errors.QueueNotFound:
                slots.release(granted)
                return
            except Exception as exc:
                slots.release(granted)
                log.warning("push %s/%s: claim failed: %s", sub.project, sub.queue, exc)
                await self._pause(lambda: asyncio.sleep(d.poll_interval))
                continue
            slots.release(granted - len(messages))
            for message in messages:
                self._spawn(sub, message, slots)
            if len(messages) < granted:
                await self._pause(functools.partial(self._idle, wake_ms))

    async def _acquire(self, slots: EndpointSlots, want: int) -> int:
        """Slots of the subscription's endpoint (broker/push/endpoints.py); a wait that stop_claiming may cut
        short (then none are taken)."""
        if self.stopped:
            return 0
        self._pausing = True
        try:
            return await slots.acquire(want)
        finally:
            self._pausing = False

    async def _claim(self, sub: ActiveSubscription, free: int) -> tuple[list[QueueMessage], int]:
        """Lease up to ``free`` messages. On a FIFO queue one claim may return several consecutive
        messages of a group, which must not be pushed side by side; claiming one at a time gives one
        message per group (the group stays busy until it settles), so order within a group holds."""
        store, visibility_ms = self.dispatcher.store, sub.visibility_s * 1000
        if not sub.fifo:
            return await store.claim(sub.project, sub.queue, free, visibility_ms, charged=False)
        messages: list[QueueMessage] = []
        wake_ms = -1
        while len(messages) < free:
            try:
                got, wake_ms = await store.claim(sub.project, sub.queue, 1, visibility_ms, charged=False)
            except Exception:
                if not messages:
                    raise
                break  # deliver what is leased already
            if not got:
                break
            messages += got
        return messages, wake_ms

    async def _idle(self, wake_ms: int) -> None:
        """Wait for a publish notification, the next known due time, or the poll interval."""
        d = self.dispatcher
        timeout = d.poll_interval
        if wake_ms >= 0:
            timeout = min(timeout, max(0.01, (wake_ms - d.store.clock()) / 1000))
        if d.notifier is not None:
            await d.notifier.wait(self.sub.project, self.sub.queue, timeout)
        else:
            await asyncio.sleep(timeout)

    def _spawn(self, sub: ActiveSubscription, message: QueueMessage, slots: EndpointSlots) -> None:
        task = asyncio.create_task(self._deliver(sub, message))
        self.deliveries.add(task)
        self.dispatcher.deliveries.add(task)
        task.add_done_callback(functools.partial(self._delivered, slots))

    def _delivered(self, slots: EndpointSlots, task: asyncio.Task[None]) -> None:
        slots.release(1)
        self.deliveries.discard(task)
        self.dispatcher.deliveries.discard(task)
        self.slot_freed.set()

    async def _deliver(self, sub: ActiveSubscription, message: QueueMessage) -> None:
        try:
            await self._attempt(sub, message)
        except Exception:  # a bug must not kill the loop; the lease ends and the message is redelivered
            log.exception("push %s/%s message %s: delivery failed", sub.project, sub.queue, message.message_id)

    async def _attempt(self, sub: ActiveSubscription, message: QueueMessage) -> None:
        d = self.dispatcher
        trace_headers: dict[str, str] = {}
        with d.tracing.push(sub.project, sub.queue, message.message_id, trace_headers) as span:
            began = time.perf_counter()
            attempt = await d.sender.send(
                sub.url, message.message_id, delivery_body(message), sub.secret or None,
                attempt_timeout_s(sub.visibility_s), extra_headers=trace_headers,
            )
            took = time.perf_counter() - began
            observe_push(took)
            d.tracing.push_outcome(span, attempt.status, attempt.error)
        where = f"{sub.project}/{sub.queue} message {message.message_id} attempt {message.attempts}"
        duration_ms = round(took * 1000)
        try:
            if attempt.ok:
                settled = await d.subs.push_ack(sub, message.message_id, message.receipt, attempt.status or 200,
                                                attempt=message.attempts, duration_ms=duration_ms)
                if not settled.acked:
                    log.info("push %s: delivered, but the lease had ended; it will be delivered again", where)
                return
            delay_ms = attempt.retry_after_ms
            if delay_ms is None:
                delay_ms = retry_delay_ms(message.attempts)
            outcome = await d.subs.fail(
                sub, message.message_id, message.receipt, delay_ms=delay_ms, status=attempt.status, error=attempt.error,
                duration_ms=duration_ms,
            )
        except (errors.LeaseExpired, errors.MessageNotFound, errors.QueueNotFound):
            log.info("push %s: the lease ended before the attempt settled; it will be delivered again", where)
            return
        except Exception as exc:
            log.warning("push %s: could not settle the attempt (%s); it will be delivered again", where, exc)
            return
        if attempt.gone:
            self.stopped = True
            log.warning("push %s: 410 Gone, subscription disabled", where)
        else:
            log.info("push %s failed (%s): %s", where, attempt.error, outcome)


class PushDispatcher:
    """Finds subscribed queues every ``refresh_interval`` seconds and runs a :class:`QueuePusher` for
    each enabled subscription (of every project, or of ``projects`` only)."""

    def __init__(
        self,
        store: Store,
        sender: WebhookSender,
        *,
        notifier: Notifier | None = None,
        projects: Sequence[str] | None = None,
        refresh_interval: float = 1.0,
        poll_interval: float = 2.0,
        tracing: Tracing | None = None,
        per_endpoint: int = ENDPOINT_CONNECTIONS,
    ):
        self.tracing = tracing or Tracing()
        self.endpoints = Endpoints(per_endpoint)
        self.store = store
        self.subs = SubscriptionStore(store)
        self.sender = sender
        self.notifier = notifier
        self.projects = tuple(projects) if projects is not None else None
        self.refresh_interval = refresh_interval
        self.poll_interval = poll_interval
        self.pushers: dict[tuple[str, str], QueuePusher] = {}
        self.deliveries: set[asyncio.Task[None]] = set()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="push-dispatcher")

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:
                log.warning("push: listing subscriptions failed: %s", exc)
            await asyncio.sleep(self.refresh_interval)

    async def refresh(self) -> None:
        """Start, update and retire queue pushers to match the stored subscriptions."""
        projects = self.projects if self.projects is not None else await self.subs.projects()
        wanted = {(s.project, s.queue): s for s in await self.subs.active(projects) if not s.disabled}
        for key in list(self.pushers):
            retired = self.pushers[key]
            if key not in wanted or retired.finished:
                del self.pushers[key]
                await retired.stop_claiming()
        self.endpoints.forget_idle({origin_of(sub.url) for sub in wanted.values()})
        for key, sub in wanted.items():
            current = self.pushers.get(key)
            if current is None:
                current = self.pushers[key] = QueuePusher(self, sub)
                current.start()
            else:
                current.sub = sub

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop claiming, give deliveries in flight ``grace_s`` seconds, then cancel the rest (their
        leases end and the messages are delivered again)."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        for pusher in list(self.pushers.values()):
            await pusher.stop_claiming()
        self.pushers.clear()
        if self.deliveries:
            _done, pending = await asyncio.wait(set(self.deliveries), timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.sender.aclose()
