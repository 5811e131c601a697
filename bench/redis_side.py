"""The Redis side on its own: our publish / claim / ack scripts called by EVALSHA over pipelined
connections, with no HTTP in front. Used for the Redis ceiling, for loading big backlogs fast, and for
the memory cost of a stored message.

Script arguments are never built here: the service's own ``Store`` builds every call against a
recorder that stands in for the Redis client (``Store`` only awaits ``evalsha``), so these calls cannot
drift from what the API sends.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import redis

from broker.schemas import QueueMessage
from broker.store.queues import OutgoingMessage, Store
from broker.store.scripts import Scripts

T = TypeVar("T")
Call = tuple[Any, ...]  # ("EVALSHA", sha, numkeys, *keys, *args)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (Store methods over the stand-ins below)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("coroutine suspended")


def _direct_scripts(redis: Any, scripts: Scripts) -> Scripts:
    """Scripts calling ``redis.evalsha`` directly (no coalescing of concurrent calls: there is no loop here)."""
    return Scripts(redis, scripts.lua, coalesce=False)


class _Recorder:
    """Stands in for the Redis client: records the EVALSHA a Store method would send."""

    def __init__(self, reply: Any = None) -> None:
        self.calls: list[Call] = []
        self.reply = [-1] if reply is None else reply

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        self.calls.append(("EVALSHA", sha, numkeys, *keys_and_args))
        return self.reply


@dataclass
class ScriptCalls:
    """Builds the EVALSHA calls of one project's operations, exactly as the Store sends them."""

    project: str
    scripts: Scripts = field(default_factory=lambda: Scripts(None))

    def _record(self, method: str, *args: Any, **kwargs: Any) -> Call:
        recorder = _Recorder()
        store = Store(recorder, _direct_scripts(recorder, self.scripts))
        run_sync(getattr(store, method)(*args, **kwargs))
        return recorder.calls[0]

    def publish(self, queue: str, payloads: Sequence[bytes], priorities: Sequence[int] | None = None) -> Call:
        prios = priorities or [0] * len(payloads)
        messages = [OutgoingMessage(p, priority=prio) for p, prio in zip(payloads, prios, strict=True)]
        return self._record("publish", self.project, queue, messages, batch=len(messages) > 1)

    def claim(self, queue: str, max_messages: int, visibility_ms: int | None = None) -> Call:
        return self._record("claim", self.project, queue, max_messages, visibility_ms)

    def ack(self, queue: str, leases: Sequence[tuple[str, str]]) -> Call:
        return self._record("ack", self.project, queue, [(i, r) for i, r in leases], field="messages",
                            capability="queue.ack_batch")

    def parse_claim(self, queue: str, reply: Any) -> list[QueueMessage]:
        """The messages of a raw claim reply, parsed by the Store itself."""
        recorder = _Recorder(reply)
        store = Store(recorder, _direct_scripts(recorder, self.scripts))
        messages, _wake = run_sync(store.claim(self.project, queue, 100, None))
        return messages

    def load(self, client: redis.Redis) -> None:
        for script in self.scripts.lua.all():
            client.script_load(script.source)


@dataclass
class PipelineRun:
    calls: int
    seconds: float
    redis_usec_per_call: float

    @property
    def calls_per_second(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0


def evalsha_usec(client: redis.Redis) -> tuple[int, float]:
    info = cast(dict[str, Any], client.info("commandstats"))
    stats = info.get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)), float(stats.get("usec", 0))


def pipelined(
    client: redis.Redis, calls: Any, depth: int, seconds: float | None = None
) -> tuple[PipelineRun, list[Any]]:
    """Send ``calls`` (an iterable of Call, or a zero-argument function returning the next Call) ``depth``
    at a time, until they run out or ``seconds`` pass. Returns the run and every reply."""
    replies: list[Any] = []
    before_calls, before_usec = evalsha_usec(client)
    started = time.perf_counter()
    deadline = None if seconds is None else started + seconds
    sent = 0
    iterator = iter(calls) if not callable(calls) else None
    while deadline is None or time.perf_counter() < deadline:
        pipe = client.pipeline(transaction=False)
        n = 0
        for _ in range(depth):
            call = calls() if iterator is None else next(iterator, None)
            if call is None:
                break
            pipe.execute_command(*call)  # type: ignore[no-untyped-call]
            n += 1
        if n == 0:
            break
        replies.extend(pipe.execute())
        sent += n
    elapsed = time.perf_counter() - started
    after_calls, after_usec = evalsha_usec(client)
    per_call = (after_usec - before_usec) / max(1, after_calls - before_calls)
    return PipelineRun(sent, elapsed, per_call), replies


def fill(client: redis.Redis, calls: ScriptCalls, queue: str, payload: bytes, count: int,
         priorities: bool = False, batch: int = 100, depth: int = 50) -> float:
    """Publish ``count`` messages by pipelined publish scripts (``batch`` per call); returns msgs/s."""
    import random

    rng = random.Random(7)
    remaining = count

    def next_call() -> Call | None:
        nonlocal remaining
        if remaining <= 0:
            return None
        n = min(batch, remaining)
        remaining -= n
        prios = [rng.randint(0, 9) for _ in range(n)] if priorities else None
        return calls.publish(queue, [payload] * n, prios)

    run, _ = pipelined(client, iter(next_call, None), depth)
    return count / run.seconds if run.seconds else 0.0


def lease_all(client: redis.Redis, calls: ScriptCalls, queue: str, count: int,
              visibility_ms: int = 3_600_000) -> list[tuple[str, str]]:
    """Lease up to ``count`` messages (claims of 100) and return their (id, receipt) pairs."""
    leases: list[tuple[str, str]] = []
    while len(leases) < count:
        missing = count - len(leases)
        batch = [calls.claim(queue, min(100, missing - i), visibility_ms) for i in range(0, min(missing, 2000), 100)]
        _run, replies = pipelined(client, batch, len(batch))
        got = 0
        for reply in replies:
            for m in calls.parse_claim(queue, reply):
                leases.append((m.message_id, m.receipt or ""))
                got += 1
        if got == 0:
            break
    return leases[:count]


def used_memory(client: redis.Redis) -> int:
    return int(cast(dict[str, Any], client.info("memory"))["used_memory"])


def settled_memory(client: redis.Redis, seconds: float = 3.0) -> int:
    """used_memory once it stops moving (incremental rehashing of big dicts finishes in the background),
    or after ``seconds``."""
    last = used_memory(client)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = used_memory(client)
        if abs(now - last) < 4096:
            return now
        last = now
    return last
