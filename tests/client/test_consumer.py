"""Consumer and AsyncConsumer against a real server: ack on return, nack with a growing delay on failure, lease
extension for slow handlers, graceful stop (by call and by SIGTERM), and both kinds of handler."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from clientkit import ROOT, Server
from support import wait_until

import broker.client as bc
from broker.client import AsyncClient, AsyncConsumer, Client, Consumer, QueueMessage


def run_in_thread(consumer: Consumer) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            consumer.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


async def run_until_acked(consumer: AsyncConsumer, acked: int, seconds: float = 15) -> None:
    """Run ``consumer`` until it acked ``acked`` messages (or ``seconds`` passed), then stop it."""
    running = asyncio.create_task(consumer.run())
    for _ in range(int(seconds / 0.05)):
        if consumer.stats.acked == acked:
            break
        await asyncio.sleep(0.05)
    consumer.stop()
    await asyncio.wait_for(running, 15)


def test_every_message_is_handled_and_acked(client: Client, queue: str) -> None:
    client.publish_batch(queue, messages=[{"payload": {"n": n}} for n in range(40)])
    seen: list[int] = []
    lock = threading.Lock()
    running = {"now": 0, "max": 0}

    def handle(message: QueueMessage) -> None:
        with lock:
            running["now"] += 1
            running["max"] = max(running["max"], running["now"])
        time.sleep(0.02)
        with lock:
            seen.append(message.payload["n"])
            running["now"] -= 1

    consumer = Consumer(client, queue, handle, concurrency=4, wait_seconds=1)
    thread, errors = run_in_thread(consumer)
    wait_until(lambda: consumer.stats.acked == 40, 30, what=lambda: f"40 acks ({consumer.stats})")
    consumer.stop()
    thread.join(15)
    assert not thread.is_alive() and not errors
    assert sorted(seen) == list(range(40)) and 1 < running["max"] <= 4
    stats = client.stats(queue)
    assert (stats.available, stats.in_flight) == (0, 0)


def test_a_failing_handler_is_retried_with_growing_delays_then_dead_lettered(
        client: Client, make_queue: Callable[..., str]) -> None:
    queue = make_queue(max_retries=2)
    client.publish(queue, payload="boom")
    deliveries: list[tuple[float, int]] = []

    def handle(message: QueueMessage) -> None:
        deliveries.append((time.monotonic(), message.attempts))
        raise RuntimeError("always fails")

    consumer = Consumer(client, queue, handle, wait_seconds=1, retry_delay=0.4)
    thread, errors = run_in_thread(consumer)
    wait_until(lambda: client.stats(queue).dlq == 1, 30, what="the message dead-lettered")
    consumer.stop()
    thread.join(15)
    assert not errors and [a for _, a in deliveries] == [1, 2, 3]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(deliveries)]
    assert gaps[0] >= 0.4 and gaps[1] >= 0.8, gaps  # 0.4 s after the first failure, 0.8 s after the second
    assert consumer.stats.nacked == 3 and consumer.stats.acked == 0
    [letter] = client.dlq_list(queue).items
    assert letter.reason == "max_retries"


def test_a_slow_handler_keeps_its_lease(client: Client, queue: str) -> None:
    client.publish(queue, payload="slow")
    done = threading.Event()

    def handle(message: QueueMessage) -> None:
        time.sleep(4.5)  # more than twice the 2 s lease
        done.set()

    consumer = Consumer(client, queue, handle, visibility_timeout=2, wait_seconds=1)
    thread, errors = run_in_thread(consumer)
    wait_until(lambda: consumer.stats.received == 1, 10, what="the message received")
    while not done.is_set():  # meanwhile nobody else gets it: the lease was extended in time
        assert client.consume(queue).messages == []
        time.sleep(0.3)
    wait_until(lambda: consumer.stats.acked == 1, 10, what="the ack")
    consumer.stop()
    thread.join(15)
    assert not errors and consumer.stats.extended >= 2 and consumer.stats.lost == 0
    assert client.stats(queue).in_flight == 0


def test_stop_lets_the_handler_in_flight_finish_and_acks_it(client: Client, queue: str) -> None:
    client.publish(queue, payload="in flight")
    started, finished = threading.Event(), threading.Event()

    def handle(message: QueueMessage) -> None:
        started.set()
        time.sleep(1.0)
        finished.set()

    consumer = Consumer(client, queue, handle, wait_seconds=1)
    thread, errors = run_in_thread(consumer)
    assert started.wait(10)
    consumer.stop()
    thread.join(15)
    assert finished.is_set() and consumer.stats.acked == 1 and not errors
    client.publish(queue, payload="after the stop")
    time.sleep(0.5)
    assert client.stats(queue).available == 1  # it fetches nothing any more


def test_a_missing_queue_ends_run_with_the_error(client: Client) -> None:
    with pytest.raises(bc.QueueNotFound):
        Consumer(client, "never-created", lambda m: None).run()


def test_async_handlers_in_the_sync_consumer(client: Client, queue: str) -> None:
    client.publish_batch(queue, messages=[{"payload": n} for n in range(5)])
    got: list[int] = []

    async def handle(message: QueueMessage) -> None:
        await asyncio.sleep(0.01)
        got.append(message.payload)

    consumer = Consumer(client, queue, handle, concurrency=2, wait_seconds=1)
    thread, errors = run_in_thread(consumer)
    wait_until(lambda: consumer.stats.acked == 5, 20, what="5 acks")
    consumer.stop()
    thread.join(15)
    assert sorted(got) == list(range(5)) and not errors


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_async_consumer_with_async_and_sync_handlers(aclient: AsyncClient, make_queue: Callable[..., str],
                                                           kind: str) -> None:
    queue = make_queue(visibility_timeout_default=2)
    await aclient.publish_batch(queue, messages=[{"payload": n} for n in range(6)])
    await aclient.publish(queue, payload="fail once")
    got: list[object] = []
    failed: list[str] = []

    def work(message: QueueMessage) -> None:
        if message.payload == "fail once" and not failed:
            failed.append(message.message_id)
            raise ValueError("first delivery fails")
        if message.payload == 0:
            time.sleep(2.5)  # past its 2 s lease: extended meanwhile
        got.append(message.payload)

    async def async_handle(message: QueueMessage) -> None:
        await asyncio.to_thread(work, message)

    consumer = AsyncConsumer(aclient, queue, async_handle if kind == "async" else work, concurrency=3,
                             wait_seconds=1, retry_delay=0.2)
    await run_until_acked(consumer, 7)
    assert sorted(map(str, got)) == sorted([*map(str, range(6)), "fail once"]), kind
    stats = consumer.stats
    assert (stats.acked, stats.nacked, stats.lost) == (7, 1, 0) and stats.extended >= 1, (kind, stats)
    counts = await aclient.stats(queue)
    assert (counts.available, counts.in_flight, counts.delayed) == (0, 0, 0)


WORKER = """
import sys, time
from broker.client import Client, Consumer

def handle(message):
    print("start", message.payload, flush=True)
    time.sleep(2)
    print("done", message.payload, flush=True)

Consumer(Client(sys.argv[1], sys.argv[2]), sys.argv[3], handle, wait_seconds=1).run()
print("exited cleanly", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_consumer_after_the_handler_in_flight(
        client: Client, queue: str, server: Server, tmp_path: Path, sig: signal.Signals) -> None:
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    out = tmp_path / "out.txt"
    with out.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, str(script), server.url, server.key, queue], stdout=sink,
                                stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        client.publish(queue, payload="job")
        wait_until(lambda: "start job" in out.read_text(), 20, what=lambda: f"the handler started: {out.read_text()}")
        proc.send_signal(sig)
        assert proc.wait(20) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out.read_text().splitlines()[-2:] == ["done job", "exited cleanly"]
    stats = client.stats(queue)
    assert (stats.available, stats.in_flight) == (0, 0)  # acked before it exited


class _Recording(httpx.HTTPTransport):
    """Counts the requests by path; with ``strip_acks``, drops the ``ack`` field of consumes (as a server that
    does not know the extension ignores it)."""

    def __init__(self, strip_acks: bool = False):
        super().__init__()
        self.paths: collections.Counter[str] = collections.Counter()
        self.strip_acks = strip_acks

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths[request.url.path] += 1
        if request.url.path == "/v1/queue/consume":
            body = json.loads(request.read())
            if "ack" in body:
                self.paths["consume with acks"] += 1
                if self.strip_acks:
                    del body["ack"]
                    request = httpx.Request(request.method, request.url, headers=request.headers,
                                            content=json.dumps(body).encode())
                    del request.headers["content-length"]
                    request.headers["content-length"] = str(len(request.content))
        return super().handle_request(request)


@pytest.mark.parametrize("strip_acks", [False, True], ids=["acks-on-consume", "server-ignores-them"])
def test_acks_ride_on_the_next_consume(server: Server, queue: str, strip_acks: bool) -> None:
    transport = _Recording(strip_acks)
    with Client(server.url, server.key, retries=2, transport=transport) as client:
        client.publish_batch(queue, messages=[{"payload": n} for n in range(20)])
        seen: list[int] = []
        consumer = Consumer(client, queue, lambda m: seen.append(m.payload), concurrency=1, wait_seconds=0.5)
        thread, errors = run_in_thread(consumer)
        wait_until(lambda: consumer.stats.acked == 20, 30, what=lambda: f"20 acks ({consumer.stats})")
        consumer.stop()
        thread.join(15)
        assert not thread.is_alive() and not errors
        assert sorted(seen) == list(range(20)) and consumer.stats.lost == 0
        stats = client.stats(queue)
        assert (stats.available, stats.in_flight) == (0, 0)
    if strip_acks:  # the first answer showed no acks: acked on their own from then on
        assert transport.paths["consume with acks"] == 1 and transport.paths["/v1/queue/ack"] == 20
    else:
        assert transport.paths["consume with acks"] >= 19 and transport.paths["/v1/queue/ack"] == 0


async def test_async_acks_ride_on_the_next_consume(server: Server, queue: str) -> None:
    transport = _AsyncRecording()
    async with AsyncClient(server.url, server.key, retries=2, transport=transport) as client:
        await client.publish_batch(queue, messages=[{"payload": n} for n in range(20)])
        seen: list[int] = []

        async def handle(message: QueueMessage) -> None:
            seen.append(message.payload)

        consumer = AsyncConsumer(client, queue, handle, concurrency=1, wait_seconds=0.5)
        await run_until_acked(consumer, 20)
        assert sorted(seen) == list(range(20)) and consumer.stats.acked == 20 and consumer.stats.lost == 0
        stats = await client.stats(queue)
        assert (stats.available, stats.in_flight) == (0, 0)
    assert transport.paths["consume with acks"] >= 19 and transport.paths["/v1/queue/ack"] == 0


class _AsyncRecording(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.paths: collections.Counter[str] = collections.Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths[request.url.path] += 1
        if request.url.path == "/v1/queue/consume" and "ack" in json.loads(await request.aread()):
            self.paths["consume with acks"] += 1
        return await super().handle_async_request(request)
