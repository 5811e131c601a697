"""Run a handler for every message of a queue: :class:`Consumer` (threads) and :class:`AsyncConsumer` (asyncio).

Both long-poll the queue for as many messages as they have free handler slots (``concurrency``), so no message
waits leased in a local buffer; call the handler (a plain function or a coroutine function) with each
:class:`~broker.client.models.QueueMessage`; ack the message when the handler returns, and nack it with a
delay that doubles with every failed delivery (``retry_delay * 2 ** (attempts - 1)``, at most
``max_retry_delay``) when it raises. While a handler runs past half of the message's lease, the lease is
extended by its full length again, as often as needed. ``stop()`` (and SIGTERM or Ctrl-C, while ``run()``
runs in the main thread) stops fetching; handlers in flight finish and their messages are acked or nacked
before ``run()`` returns. A long poll in progress is let finish (it may take ``wait_seconds``) and the
messages it brings are handled too, since a poll cut short could lease messages that nobody then handles.

An ack goes out with the next consume when the poll is about to be sent anyway (a handler slot freed while
every slot was busy: the usual case with ``concurrency=1``): one request acks the previous messages and leases
the next ones (the ``ack`` extension of consume, docs/api.md). While a long poll with free slots is under way,
a finished message is acked on its own at once, so that no ack waits for a poll. A server that ignores the
extension (an older one) is noticed on the first answer: those messages are acked on their own, and the
consumer does so from then on.

Transient failures of the server (503, 429, connection failures, 500) are logged and waited out with growing
pauses; errors that retrying cannot fix (a revoked key, the queue deleted, an invalid argument) end ``run()``
with the error, after the handlers in flight finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from broker.client.aio import AsyncClient
from broker.client.errors import (
    BrokerError,
    ConnectionFailed,
    InternalError,
    LeaseExpired,
    MessageNotFound,
    RateLimited,
    Unavailable,
)
from broker.client.models import AckItem, Consumed, QueueMessage
from broker.client.sync import Client

log = logging.getLogger("broker.client.consumer")

Handler = Callable[[QueueMessage], Any]
#: Failures of the server that waiting can fix.
TRANSIENT = (Unavailable, RateLimited, ConnectionFailed, InternalError)
#: The pause after a failed poll doubles from this up to MAX_POLL_PAUSE seconds.
FIRST_POLL_PAUSE = 0.5
MAX_POLL_PAUSE = 30.0


@dataclass
class ConsumerStats:
    """What a consumer did so far."""

    received: int = 0
    acked: int = 0
    nacked: int = 0
    extended: int = 0
    #: Messages whose lease was lost before their ack or nack (they are delivered again).
    lost: int = 0


@dataclass
class _Lease:
    message: QueueMessage
    receipt: str
    renew_at: float
    lost: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Settings:
    """What both consumers take, checked once."""

    def __init__(self, queue: str, handler: Handler, concurrency: int, wait_seconds: float,
                 visibility_timeout: float | None, retry_delay: float, max_retry_delay: float, handle_signals: bool):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not 0 <= wait_seconds <= 20:
            raise ValueError("wait_seconds must be between 0 and 20")
        self.queue = queue
        self.handler = handler
        self.concurrency = concurrency
        self.wait_seconds = wait_seconds
        self.visibility_timeout = visibility_timeout
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.handle_signals = handle_signals
        self.stats = ConsumerStats()
        #: The length of a lease: visibility_timeout, else the queue's default (asked by run()).
        self.lease_seconds = visibility_timeout or 0.0
        self.stats_lock = threading.Lock()

    def count(self, name: str) -> None:
        with self.stats_lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    def nack_delay(self, attempts: int) -> float:
        """The delay of the nack after the ``attempts``-th delivery failed."""
        return float(min(self.max_retry_delay, self.retry_delay * 2 ** max(0, attempts - 1)))

    def renew_at(self, now: float) -> float:
        """When a lease taken (or renewed) at ``now`` is due for an extension: half-way through it."""
        return now + self.lease_seconds / 2 if self.lease_seconds > 0 else float("inf")

    def max_messages(self, free: int) -> int:
        return min(free, 100)

    def poll_pause(self, failures: int) -> float:
        return float(min(MAX_POLL_PAUSE, FIRST_POLL_PAUSE * 2 ** (failures - 1)))

    def settle_failed(self, message: QueueMessage, what: str, exc: BrokerError) -> None:
        """An ack or nack of ``message`` failed with ``exc``: the message will be delivered again."""
        self.count("lost")
        if isinstance(exc, LeaseExpired | MessageNotFound):
            log.warning("message %s: its lease was lost before the %s (%s); it will be delivered again",
                        message.message_id, what, exc.code)
        else:
            log.error("message %s: %s failed (%s); it will be delivered again when its lease ends",
                      message.message_id, what, exc)

    def acks_answered(self, acks: list[_Lease], consumed: Consumed) -> list[_Lease]:
        """Count the answer to the acks a consume carried; returns them all when the server ignored them (it
        does not know the extension), for the caller to ack on their own."""
        if consumed.acked is None:
            log.info("the server does not ack on consume; acking on its own from now on")
            return acks
        with self.stats_lock:
            self.stats.acked += len(consumed.acked)
        for failure in consumed.failed or ():
            self.count("lost")
            log.warning("message %s: its lease was lost before the ack (%s); it will be delivered again",
                        failure.message_id, failure.code)
        return []


def _ack_of(lease: _Lease) -> AckItem:
    return AckItem(message_id=lease.message.message_id, receipt=lease.receipt)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


async def _await(value: Awaitable[Any]) -> Any:
    return await value


class Consumer:
    """Run ``handler`` for the messages of ``queue`` with ``concurrency`` threads; see the module's docstring.

    ``wait_seconds`` is the long poll's wait (also the longest ``stop()`` may wait for a poll in progress);
    ``visibility_timeout`` the lease to ask for (default: the queue's own)."""

    def __init__(
        self,
        client: Client,
        queue: str,
        handler: Handler,
        *,
        concurrency: int = 1,
        wait_seconds: float = 10,
        visibility_timeout: float | None = None,
        retry_delay: float = 1.0,
        max_retry_delay: float = 300.0,
        handle_signals: bool = True,
    ):
        self.client = client
        self._s = _Settings(queue, handler, concurrency, wait_seconds, visibility_timeout, retry_delay,
                            max_retry_delay, handle_signals)
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._slots = threading.Semaphore(concurrency)
        self._leases: dict[str, _Lease] = {}
        self._leases_lock = threading.Lock()
        # Acks handed to the poller while no consume of it is under way (it sends them with its next one).
        self._to_ack: list[_Lease] = []
        self._poller_busy = False
        self._ack_lock = threading.Lock()
        self._ack_on_consume = True

    @property
    def stats(self) -> ConsumerStats:
        return self._s.stats

    def stop(self) -> None:
        """Stop fetching; ``run()`` returns once the handlers in flight finished (callable from any thread)."""
        self._stopping.set()

    def run(self) -> None:
        """Consume until :meth:`stop` (or SIGTERM/SIGINT), then let the handlers in flight finish."""
        s = self._s
        self._stopping.clear()
        self._finished.clear()
        with self._signals():
            if s.visibility_timeout is None:
                s.lease_seconds = self.client.get_queue(s.queue).visibility_timeout_default
            log.info("consuming %r with concurrency %d", s.queue, s.concurrency)
            heartbeat = threading.Thread(target=self._heartbeat, name="broker-consumer-heartbeat", daemon=True)
            heartbeat.start()
            pool = ThreadPoolExecutor(max_workers=s.concurrency, thread_name_prefix="broker-consumer")
            try:
                self._poll(pool)
            finally:
                self._stopping.set()
                with self._ack_lock:
                    self._poller_busy = True  # handlers finishing from now on ack on their own
                pool.shutdown(wait=True)
                for lease in self._take_acks():
                    self._ack(lease)
                self._finished.set()
                heartbeat.join()
                log.info("stopped consuming %r", s.queue)

    def _poll(self, pool: ThreadPoolExecutor) -> None:
        s = self._s
        failures = 0
        while not self._stopping.is_set():
            free = self._take_slots()
            with self._ack_lock:
                self._poller_busy = True  # handlers ack on their own while the poll is under way
                acks, self._to_ack = self._to_ack, []
            if not free:  # stopping: run() acks them
                with self._ack_lock:
                    self._to_ack = acks + self._to_ack
                continue
            try:
                consumed = self.client.consume(s.queue, max_messages=s.max_messages(free), wait_seconds=s.wait_seconds,
                                               visibility_timeout=s.visibility_timeout,
                                               ack=[_ack_of(lease) for lease in acks] if acks else None)
            except TRANSIENT as exc:
                self._give_slots(free)
                for lease in acks:
                    self._ack(lease)
                failures += 1
                pause = s.poll_pause(failures)
                log.warning("consume %r failed (%s); polling again in %.1f s", s.queue, exc, pause)
                self._stopping.wait(pause)
                with self._ack_lock:
                    self._poller_busy = False
                continue
            except BaseException:
                self._give_slots(free)
                with self._ack_lock:
                    self._to_ack = acks + self._to_ack  # run() acks them on its way out
                raise
            failures = 0
            now = time.monotonic()
            if acks:
                for lease in self._s.acks_answered(acks, consumed):
                    self._ack_on_consume = False
                    self._ack(lease)
            with self._ack_lock:
                self._poller_busy = False  # it polls again next, as soon as a slot is free
            self._give_slots(free - len(consumed.messages))
            for message in consumed.messages:
                s.count("received")
                lease = _Lease(message, message.receipt, s.renew_at(now))
                with self._leases_lock:
                    self._leases[message.message_id] = lease
                pool.submit(self._process, lease)

    def _take_acks(self) -> list[_Lease]:
        with self._ack_lock:
            acks, self._to_ack = self._to_ack, []
        return acks

    def _take_slots(self) -> int:
        """Wait for one free handler slot (or the stop), then take every other free one."""
        while not self._slots.acquire(timeout=0.2):
            if self._stopping.is_set():
                return 0
        taken = 1
        while taken < 100 and self._slots.acquire(blocking=False):
            taken += 1
        return taken

    def _give_slots(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()

    def _call_handler(self, message: QueueMessage) -> None:
        result = self._s.handler(message)
        if inspect.isawaitable(result):
            asyncio.run(_await(result))

    def _process(self, lease: _Lease) -> None:
        s, message = self._s, lease.message
        try:
            try:
                self._call_handler(message)
            except Exception as exc:
                delay = s.nack_delay(message.attempts)
                log.warning("handler failed on message %s (delivery %d): %r; retrying it in %.1f s",
                            message.message_id, message.attempts, exc, delay, exc_info=True)
                self._settle(lease, nack_delay=delay)
            else:
                self._settle(lease, nack_delay=None)
        finally:
            with self._leases_lock:
                self._leases.pop(message.message_id, None)
            self._slots.release()

    def _settle(self, lease: _Lease, nack_delay: float | None) -> None:
        with lease.lock:
            lease.lost = True  # no extension from now on: the heartbeat skips it
            if nack_delay is None and self._ack_on_consume:
                with self._ack_lock:
                    handed = not self._poller_busy
                    if handed:
                        self._to_ack.append(lease)  # the poller's next consume (this slot frees one) takes it
                if handed:
                    return
            if nack_delay is None:
                self._ack(lease)
            else:
                self._nack(lease, nack_delay)

    def _ack(self, lease: _Lease) -> None:
        s, message = self._s, lease.message
        try:
            self.client.ack(s.queue, message_id=message.message_id, receipt=lease.receipt)
            s.count("acked")
        except BrokerError as exc:
            s.settle_failed(message, "ack", exc)

    def _nack(self, lease: _Lease, delay: float) -> None:
        s, message = self._s, lease.message
        try:
            self.client.nack(s.queue, message_id=message.message_id, receipt=lease.receipt, delay_seconds=delay)
            s.count("nacked")
        except BrokerError as exc:
            s.settle_failed(message, "nack", exc)

    def _heartbeat(self) -> None:
        s = self._s
        tick = min(1.0, max(0.05, s.lease_seconds / 8))
        while not self._finished.wait(tick):
            now = time.monotonic()
            with self._leases_lock:
                due = [lease for lease in self._leases.values() if lease.renew_at <= now and not lease.lost]
            for lease in due:
                self._extend(lease)

    def _extend(self, lease: _Lease) -> None:
        s = self._s
        if not lease.lock.acquire(blocking=False):
            return  # being acked or nacked right now
        try:
            if lease.lost:
                return  # acked or nacked meanwhile
            extended = self.client.extend(s.queue, message_id=lease.message.message_id,
                                          visibility_timeout=s.lease_seconds, receipt=lease.receipt)
            lease.receipt = extended.receipt
            lease.renew_at = s.renew_at(time.monotonic())
            s.count("extended")
        except (LeaseExpired, MessageNotFound) as exc:
            lease.lost = True
            log.warning("message %s: lease lost while its handler runs (%s)", lease.message.message_id, exc.code)
        except BrokerError as exc:
            log.warning("message %s: extending the lease failed (%s); trying again", lease.message.message_id, exc)
        finally:
            lease.lock.release()

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if not (self._s.handle_signals and _in_main_thread()):
            yield
            return

        def on_signal(signum: int, frame: Any) -> None:
            log.info("%s: stopping (handlers in flight finish first)", signal.Signals(signum).name)
            self.stop()
            signal.signal(signum, previous[signal.Signals(signum)])  # a second signal acts as it would have without us

        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        for sig in previous:
            signal.signal(sig, on_signal)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class AsyncConsumer:
    """The asyncio twin of :class:`Consumer`: ``handler`` may be a coroutine function (awaited in the loop) or
    a plain function (run in a worker thread, so it may block); at most ``concurrency`` run at once."""

    def __init__(
        self,
        client: AsyncClient,
        queue: str,
        handler: Handler,
        *,
        concurrency: int = 1,
        wait_seconds: float = 10,
        visibility_timeout: float | None = None,
        retry_delay: float = 1.0,
        max_retry_delay: float = 300.0,
        handle_signals: bool = True,
    ):
        self.client = client
        self._s = _Settings(queue, handler, concurrency, wait_seconds, visibility_timeout, retry_delay,
                            max_retry_delay, handle_signals)
        self._stopping = asyncio.Event()
        self._leases: dict[str, _Lease] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Acks handed to the poller while no consume of it is under way (it sends them with its next one).
        self._to_ack: list[_Lease] = []
        self._poller_busy = False
        self._ack_on_consume = True

    @property
    def stats(self) -> ConsumerStats:
        return self._s.stats

    def stop(self) -> None:
        """Stop fetching; ``run()`` returns once the handlers in flight finished (call it from the loop's thread)."""
        self._stopping.set()

    async def run(self) -> None:
        """Consume until :meth:`stop` (or SIGTERM/SIGINT), then let the handlers in flight finish."""
        s = self._s
        self._stopping.clear()
        with self._signals():
            if s.visibility_timeout is None:
                s.lease_seconds = (await self.client.get_queue(s.queue)).visibility_timeout_default
            log.info("consuming %r with concurrency %d", s.queue, s.concurrency)
            heartbeat = asyncio.create_task(self._heartbeat())
            try:
                await self._poll()
            finally:
                self._stopping.set()
                self._poller_busy = True  # handlers finishing from now on ack on their own
                if self._tasks:
                    await asyncio.gather(*self._tasks, return_exceptions=True)
                acks, self._to_ack = self._to_ack, []
                for lease in acks:
                    await self._ack(lease)
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
                log.info("stopped consuming %r", s.queue)

    async def _poll(self) -> None:
        s = self._s
        failures = 0
        stop_waiter = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                free = s.concurrency - len(self._tasks)
                if free <= 0:
                    await asyncio.wait({stop_waiter, *self._tasks}, return_when=asyncio.FIRST_COMPLETED)
                    continue
                acks, self._to_ack = self._to_ack, []
                self._poller_busy = True  # handlers ack on their own while the poll is under way
                try:
                    consumed = await self.client.consume(s.queue, max_messages=s.max_messages(free),
                                                         wait_seconds=s.wait_seconds,
                                                         visibility_timeout=s.visibility_timeout,
                                                         ack=[_ack_of(lease) for lease in acks] if acks else None)
                except TRANSIENT as exc:
                    for lease in acks:
                        await self._ack(lease)
                    failures += 1
                    pause = s.poll_pause(failures)
                    log.warning("consume %r failed (%s); polling again in %.1f s", s.queue, exc, pause)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(stop_waiter), pause)
                    self._poller_busy = False
                    continue
                except BaseException:
                    self._to_ack = acks + self._to_ack  # run() acks them on its way out
                    raise
                failures = 0
                now = time.monotonic()
                if acks:
                    for lease in s.acks_answered(acks, consumed):
                        self._ack_on_consume = False
                        await self._ack(lease)
                self._poller_busy = False  # it polls again next, as soon as a slot is free
                for message in consumed.messages:
                    s.count("received")
                    lease = _Lease(message, message.receipt, s.renew_at(now))
                    self._leases[message.message_id] = lease
                    task = asyncio.create_task(self._process(lease))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            stop_waiter.cancel()

    async def _call_handler(self, message: QueueMessage) -> None:
        handler = self._s.handler
        if inspect.iscoroutinefunction(handler):
            await handler(message)
            return
        result = await asyncio.to_thread(handler, message)
        if inspect.isawaitable(result):
            await result

    async def _process(self, lease: _Lease) -> None:
        s, message = self._s, lease.message
        try:
            try:
                await self._call_handler(message)
            except Exception as exc:
                delay = s.nack_delay(message.attempts)
                log.warning("handler failed on message %s (delivery %d): %r; retrying it in %.1f s",
                            message.message_id, message.attempts, exc, delay, exc_info=True)
                await self._settle(lease, nack_delay=delay)
            else:
                await self._settle(lease, nack_delay=None)
        finally:
            self._leases.pop(message.message_id, None)

    async def _settle(self, lease: _Lease, nack_delay: float | None) -> None:
        lease.lost = True  # no extension from now on: the heartbeat skips it
        if nack_delay is None and self._ack_on_consume and not self._poller_busy:
            self._to_ack.append(lease)  # the poller's next consume (this task's end frees a slot) takes it
            return
        if nack_delay is None:
            await self._ack(lease)
            return
        s, message = self._s, lease.message
        try:
            await self.client.nack(s.queue, message_id=message.message_id, receipt=lease.receipt,
                                   delay_seconds=nack_delay)
            s.count("nacked")
        except BrokerError as exc:
            s.settle_failed(message, "nack", exc)

    async def _ack(self, lease: _Lease) -> None:
        s, message = self._s, lease.message
        try:
            await self.client.ack(s.queue, message_id=message.message_id, receipt=lease.receipt)
            s.count("acked")
        except BrokerError as exc:
            s.settle_failed(message, "ack", exc)

    async def _heartbeat(self) -> None:
        s = self._s
        tick = min(1.0, max(0.05, s.lease_seconds / 8))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for lease in [lease for lease in self._leases.values() if lease.renew_at <= now and not lease.lost]:
                try:
                    extended = await self.client.extend(s.queue, message_id=lease.message.message_id,
                                                        visibility_timeout=s.lease_seconds, receipt=lease.receipt)
                except (LeaseExpired, MessageNotFound) as exc:
                    lease.lost = True
                    log.warning("message %s: lease lost while its handler runs (%s)", lease.message.message_id,
                                exc.code)
                    continue
                except BrokerError as exc:
                    log.warning("message %s: extending the lease failed (%s); trying again",
                                lease.message.message_id, exc)
                    continue
                if not lease.lost:
                    lease.receipt = extended.receipt
                    lease.renew_at = s.renew_at(time.monotonic())
                    s.count("extended")

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if not (self._s.handle_signals and _in_main_thread()):
            yield
            return
        loop = asyncio.get_running_loop()

        def on_signal(sig: signal.Signals) -> None:
            log.info("%s: stopping (handlers in flight finish first)", sig.name)
            self.stop()
            loop.remove_signal_handler(sig)  # a second signal acts as it would have without us

        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, on_signal, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not the main thread's loop, or not supported here
                pass
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
