"""A queue workload that records its whole history, and the queue checker over that history.

Publishers publish (``publish`` and ``publish_batch``) payloads that carry a unique id; each attempt is
recorded before it is sent, and its outcome after: acknowledged (200), refused (a definite 4xx), or
indeterminate (a transport error or a 503: it may or may not have been stored). Consumers consume with a
lease and ack (``ack``, sometimes ``ack_batch``), recording every delivery; an ack whose outcome is
unknown is retried until it is known.

The checker (Jepsen's total-queue check, made stricter) then requires, over the history:

- **lost = 0**: every acknowledged publish was delivered and its delivery was acked (a message whose only
  deliveries went to a consumer that died must have been delivered again). An ack is known to have taken
  effect on a 200, or on a 404 after an attempt whose outcome is unknown; a message whose last delivery got
  only ack attempts of unknown outcome (no answer, 503) and a 409, or no answer within the minute, and was
  never delivered again, may have been acked by one of them: it is counted apart (``maybe_acked``), as an
  indeterminate publish is, not as lost;
- **unexpected = 0**: nothing was delivered that was never published, and every delivered payload is
  exactly what was published under its id;
- no publish attempt stored twice (one payload id, two message ids);
- and it counts duplicates (deliveries beyond the first), which at-least-once delivery allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

PUBLISH_TIMEOUT = 30.0


@dataclass(frozen=True)
class Delivery:
    pid: str
    message_id: str
    attempts: int
    consumer: str
    at: float


@dataclass
class History:
    """Everything the clients saw."""

    sent: dict[str, Any] = field(default_factory=dict)  # payload id -> payload as sent
    acknowledged: set[str] = field(default_factory=set)
    indeterminate: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    message_ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    deliveries: list[Delivery] = field(default_factory=list)
    completed: set[str] = field(default_factory=set)
    corrupted: list[str] = field(default_factory=list)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    transport: Counter[tuple[str, str]] = field(default_factory=Counter)
    hangs: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    max_latency: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    keep_latencies: bool = False
    ops: int = 0
    ack_events: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # pid -> "t op status"
    #: pid -> when an ack attempt of unknown outcome was last sent for it (no answer, or a 503)
    ack_unknown: dict[str, float] = field(default_factory=dict)

    def acked(self, pid: str, op: str, response: httpx.Response | None) -> None:
        """Note one ack attempt of ``pid`` (the checker's trail for a message found lost)."""
        status = "no answer" if response is None else str(response.status_code)
        now = time.monotonic()
        self.ack_events[pid].append(f"{now:.2f} {op} {status}")
        if response is None or response.status_code == 503:
            self.ack_unknown[pid] = now

    def maybe_acked(self, pid: str) -> bool:
        """An ack attempt of unknown outcome was sent for ``pid`` after its last delivery: it may have acked it."""
        sent = self.ack_unknown.get(pid)
        return sent is not None and all(d.at < sent for d in self.deliveries if d.pid == pid)

    def trail(self, pid: str) -> list[str]:
        """What the clients saw of ``pid``: its deliveries and its ack attempts, in time order."""
        events = [f"{d.at:.2f} delivered {d.message_id} attempt {d.attempts} to {d.consumer}"
                  for d in self.deliveries if d.pid == pid]
        return sorted(events + self.ack_events.get(pid, []))

    def record(self, op: str, response: httpx.Response, latency: float) -> None:
        self.ops += 1
        self.statuses[(op, response.status_code)] += 1
        self.max_latency[op] = max(self.max_latency[op], latency)
        if self.keep_latencies:
            self.latencies[op].append(latency)
        if response.status_code == 200:
            return
        problem = shape_problem(response)
        if problem or (response.status_code >= 500 and response.status_code != 503):
            self.server_errors.append(f"{op}: {response.status_code} {problem} {response.text[:300]}")

    def failed(self, op: str, exc: Exception) -> None:
        self.ops += 1
        self.transport[(op, type(exc).__name__)] += 1
        if isinstance(exc, httpx.TimeoutException):
            self.hangs.append(f"{op}: {type(exc).__name__} at {time.strftime('%H:%M:%S')}")

    def deliver(self, message: dict[str, Any], consumer: str) -> str:
        """Record a delivery; its payload id (checked against what was sent)."""
        payload = message.get("payload")
        pid = payload.get("id") if isinstance(payload, dict) else None
        pid = pid if isinstance(pid, str) else f"<no id: {payload!r:.80}>"
        self.deliveries.append(Delivery(pid, message["message_id"], message["attempts"], consumer, time.monotonic()))
        self.message_ids[pid].add(message["message_id"])
        if pid in self.sent and self.sent[pid] != payload:
            self.corrupted.append(pid)
        return pid


def shape_problem(response: httpx.Response) -> str:
    """What is wrong with an error response's shape ('' when it is the contract's)."""
    try:
        body = response.json()
    except ValueError:
        return "body is not JSON"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or set(body) != {"error"}:
        return "not {error: {...}}"
    if not {"code", "message", "request_id"} <= set(error):
        return "error lacks code/message/request_id"
    expected = {503: "UNAVAILABLE", 429: "RATE_LIMITED", 500: "INTERNAL"}.get(response.status_code)
    if expected and error["code"] != expected:
        return f"code {error['code']} for {response.status_code}"
    if response.status_code in (429, 503) and "retry-after" not in response.headers:
        return "no Retry-After"
    return ""


@dataclass
class Verdict:
    attempted: int
    acknowledged: int
    indeterminate: int
    indeterminate_delivered: int
    deliveries: int
    delivered_unique: int
    completed: int
    lost: list[str]
    maybe_acked: list[str]
    never_delivered: list[str]
    unexpected: list[str]
    corrupted: list[str]
    double_stored: list[str]
    duplicates: int
    redelivered: int
    orphaned_leases: int
    orphans_not_redelivered: list[str]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.never_delivered or self.unexpected or self.corrupted or self.double_stored
                    or self.orphans_not_redelivered)

    def summary(self) -> str:
        return (f"attempted={self.attempted} acknowledged={self.acknowledged} indeterminate={self.indeterminate} "
                f"(of which delivered {self.indeterminate_delivered}) deliveries={self.deliveries} "
                f"unique={self.delivered_unique} lost={len(self.lost)} maybe_acked={len(self.maybe_acked)} "
                f"unexpected={len(self.unexpected)} "
                f"corrupted={len(self.corrupted)} double_stored={len(self.double_stored)} "
                f"duplicates={self.duplicates} redelivered={self.redelivered} orphaned_leases={self.orphaned_leases} "
                f"orphans_not_redelivered={len(self.orphans_not_redelivered)}")


def check(history: History, orphaned: Iterable[Delivery] = ()) -> Verdict:
    """The queue checker. ``orphaned``: deliveries to consumers that were killed while holding the lease
    (never acked); each must have been delivered again later, with a higher attempt count."""
    orphaned = list(orphaned)
    everything = history.deliveries + orphaned
    delivered = {d.pid for d in everything}
    per_pid = Counter(d.pid for d in everything)
    later: dict[str, int] = {}
    for d in history.deliveries:
        later[d.message_id] = max(later.get(d.message_id, 0), d.attempts)
    return Verdict(
        attempted=len(history.sent),
        acknowledged=len(history.acknowledged),
        indeterminate=len(history.indeterminate),
        indeterminate_delivered=len(history.indeterminate & delivered),
        deliveries=len(everything),
        delivered_unique=len(delivered),
        completed=len(history.completed),
        lost=sorted(pid for pid in history.acknowledged - history.completed if not history.maybe_acked(pid)),
        maybe_acked=sorted(pid for pid in history.acknowledged - history.completed if history.maybe_acked(pid)),
        never_delivered=sorted(history.acknowledged - delivered),
        unexpected=sorted(delivered - set(history.sent)),
        corrupted=sorted(set(history.corrupted)),
        double_stored=sorted(pid for pid, ids in history.message_ids.items() if len(ids) > 1),
        duplicates=len(everything) - len(delivered),
        redelivered=sum(1 for n in per_pid.values() if n > 1),
        orphaned_leases=len(orphaned),
        orphans_not_redelivered=sorted(d.pid for d in orphaned if later.get(d.message_id, 0) <= d.attempts),
    )


class Workload:
    """Publishers and consumers against one queue of one server, recording into ``history``."""

    def __init__(
        self,
        base_url: str,
        key: str,
        queue: str,
        history: History,
        *,
        publishers: int = 3,
        consumers: int = 3,
        batch_max: int = 10,
        batch_share: float = 0.3,
        max_messages: int = 10,
        visibility: float = 3.0,
        wait_seconds: float = 1.0,
        pad: int = 64,
        publish_interval: float = 0.0,
        seed: int = 1,
        run: str = "r",
    ):
        self.base_url = base_url
        self.key = key
        self.queue = queue
        self.history = history
        self.publishers = publishers
        self.consumers = consumers
        self.batch_max = batch_max
        self.batch_share = batch_share
        self.max_messages = max_messages
        self.visibility = visibility
        self.wait_seconds = wait_seconds
        self.pad = "x" * pad
        self.publish_interval = publish_interval
        self.rng = random.Random(seed)
        self.run = run
        self.publishing = asyncio.Event()
        self.consuming = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._counter = 0
        self.last_progress = time.monotonic()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers={"Authorization": f"Bearer {self.key}"},
                timeout=httpx.Timeout(PUBLISH_TIMEOUT + self.wait_seconds, connect=5.0),
                limits=httpx.Limits(max_connections=self.publishers + self.consumers * (self.max_messages + 1) + 8),
            )
        return self._client

    async def call(self, op: str, method: str, path: str, body: Any = None) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = await self.client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            self.history.failed(op, exc)
            return None
        latency = time.monotonic() - started
        if op == "consume" and body:
            latency = max(0.0, latency - float(body.get("wait_seconds", 0)))
        self.history.record(op, response, latency)
        return response

    def start(self) -> None:
        self.publishing.set()
        self.consuming.set()
        for i in range(self.publishers):
            self._tasks.append(asyncio.create_task(self._publisher(i), name=f"publisher-{i}"))
        for i in range(self.consumers):
            self._tasks.append(asyncio.create_task(self._consumer(f"c{i}"), name=f"consumer-{i}"))

    def _payload(self, publisher: int) -> tuple[str, dict[str, Any]]:
        self._counter += 1
        pid = f"{self.run}-{publisher}-{self._counter}"
        return pid, {"id": pid, "n": self._counter, "pad": self.pad}

    async def _publisher(self, index: int) -> None:
        h = self.history
        while self.publishing.is_set():
            batch = self.rng.random() < self.batch_share
            count = self.rng.randint(2, self.batch_max) if batch else 1
            items = [self._payload(index) for _ in range(count)]
            for pid, payload in items:
                h.sent[pid] = payload
            if batch:
                body: dict[str, Any] = {"queue": self.queue, "messages": [{"payload": p} for _, p in items]}
                response = await self.call("publish_batch", "POST", "/v1/queue/publish_batch", body)
            else:
                body = {"queue": self.queue, "payload": items[0][1]}
                response = await self.call("publish", "POST", "/v1/queue/publish", body)
            pids = [pid for pid, _ in items]
            if response is not None and response.status_code == 200:
                reply = response.json()
                ids = reply["message_ids"] if batch else [reply["message_id"]]
                for pid, mid in zip(pids, ids, strict=True):
                    h.acknowledged.add(pid)
                    h.message_ids[pid].add(mid)
                self.last_progress = time.monotonic()
            elif response is not None and 400 <= response.status_code < 500 and response.status_code != 429:
                h.refused.update(pids)
            else:
                h.indeterminate.update(pids)
                await asyncio.sleep(0.1)
            if self.publish_interval:
                await asyncio.sleep(self.publish_interval)

    async def _consumer(self, name: str) -> None:
        while self.consuming.is_set():
            body = {"queue": self.queue, "max_messages": self.max_messages, "visibility_timeout": self.visibility,
                    "wait_seconds": self.wait_seconds}
            response = await self.call("consume", "POST", "/v1/queue/consume", body)
            if response is None or response.status_code != 200:
                await asyncio.sleep(0.1)
                continue
            messages = response.json()["messages"]
            if not messages:
                continue
            self.last_progress = time.monotonic()
            leased = [(self.history.deliver(m, name), m) for m in messages]
            if len(leased) > 1 and self.rng.random() < 0.25:
                await self._ack_batch(leased)
            else:
                await asyncio.gather(*(self._ack(pid, message) for pid, message in leased))

    async def _ack(self, pid: str, message: dict[str, Any], tried: bool = False) -> None:
        """Ack until the outcome is known. 404 after an attempt with an unknown outcome: that attempt
        deleted it. 409: the lease ended (the message comes back). Gives up after a minute."""
        body = {"queue": self.queue, "message_id": message["message_id"], "receipt": message["receipt"]}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            response = await self.call("ack", "POST", "/v1/queue/ack", body)
            self.history.acked(pid, "ack", response)
            if response is None or response.status_code in (429, 503):
                tried = True
                await asyncio.sleep(0.1)
                continue
            if response.status_code == 200 or (response.status_code == 404 and tried):
                self.history.completed.add(pid)
            return

    async def _ack_batch(self, leased: list[tuple[str, dict[str, Any]]]) -> None:
        body = {"queue": self.queue,
                "messages": [{"message_id": m["message_id"], "receipt": m["receipt"]} for _, m in leased]}
        tried = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            response = await self.call("ack_batch", "POST", "/v1/queue/ack_batch", body)
            for pid, _ in leased:
                self.history.acked(pid, "ack_batch", response)
            if response is None or response.status_code in (429, 503):
                tried = True
                await asyncio.sleep(0.1)
                continue
            if response.status_code == 200:
                self.history.completed.update(pid for pid, _ in leased)
                return
            break  # one of them is not leased any more: all or nothing, so ack them one by one
        await asyncio.gather(*(self._ack(pid, message, tried) for pid, message in leased))

    async def stats(self) -> dict[str, Any] | None:
        response = await self.call("stats", "GET", f"/v1/queue/stats/{self.queue}")
        if response is None or response.status_code != 200:
            return None
        stats: dict[str, Any] = response.json()
        return stats

    async def stop_publishing(self) -> None:
        self.publishing.clear()
        await asyncio.gather(*(t for t in self._tasks if t.get_name().startswith("publisher")))

    async def drain(self, stall: float, limit: float = 1800) -> dict[str, Any] | None:
        """Consume until the queue is empty (nothing available, delayed or in flight) and stays so, giving up
        when the backlog did not shrink for ``stall`` seconds (or after ``limit``); stop the consumers; the
        last stats."""
        deadline = time.monotonic() + limit
        stats = None
        empty_since: float | None = None
        smallest: int | None = None
        progress_at = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - progress_at < stall:
            stats = await self.stats()
            if stats is not None:
                backlog = stats["available"] + stats["in_flight"] + stats["delayed"]
                if smallest is None or backlog < smallest:
                    smallest, progress_at = backlog, time.monotonic()
                if backlog == 0:
                    empty_since = empty_since or time.monotonic()
                    if time.monotonic() - empty_since >= 1.0:
                        break
                else:
                    empty_since = None
            await asyncio.sleep(0.25)
        await self.stop()
        return stats

    async def stop(self) -> None:
        self.publishing.clear()
        self.consuming.clear()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=PUBLISH_TIMEOUT + self.wait_seconds + 5)
            for task in pending:
                task.cancel()
            for task in [*done, *pending]:
                with contextlib.suppress(BaseException):
                    await task
            self._tasks.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
