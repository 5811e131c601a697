"""RabbitMQ peer: a durable classic queue, persistent messages, publisher confirms, manual acks, with the
aio-pika client (optional dependency group ``bench``).

Two measurements, each against a fresh queue that is deleted afterwards:

- publish: ``inflight`` concurrent publishers, each awaiting its confirm before the next publish;
- end to end: producers as above and one consumer (prefetch ``prefetch``, one ack per message) at the
  same time, in two processes, so neither Python client slows the other.

``python -m bench.peers.rabbitmq {produce,consume} '<json options>'`` runs one side and prints
``BENCH_RESULT {json}``; :func:`run` drives both. The broker URL comes from ``BENCH_RABBITMQ_URL``
(default ``amqp://guest:guest@127.0.0.1:5672/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import time
import uuid
from typing import Any

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


def broker_url() -> str:
    return os.environ.get("BENCH_RABBITMQ_URL", DEFAULT_URL)


def available() -> str | None:
    """None when RabbitMQ can be benchmarked, else why not."""
    try:
        import aio_pika  # noqa: F401
    except ImportError:
        return "aio-pika is not installed (pip install -e '.[bench]')"
    try:
        asyncio.run(_declare("bench-probe-" + uuid.uuid4().hex[:8], delete=True))
    except Exception as exc:
        return f"RabbitMQ at {broker_url()} does not answer: {exc.__class__.__name__}"
    return None


async def _declare(queue: str, delete: bool = False) -> None:
    import aio_pika

    connection = await aio_pika.connect(broker_url(), timeout=3)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True)
        if delete:
            await declared.delete(if_unused=False, if_empty=False)


def server_version() -> str:
    """The broker's version, from its AMQP connection properties."""

    async def ask() -> str:
        import aio_pika

        connection = await aio_pika.connect(broker_url(), timeout=3)
        async with connection:
            transport = connection.transport
            properties = transport.connection.server_properties if transport is not None else {}
            version = properties.get("version", b"?")
        return version.decode() if isinstance(version, bytes) else str(version)

    try:
        return asyncio.run(ask())
    except Exception:
        return "?"


def _percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def produce(options: dict[str, Any]) -> dict[str, Any]:
    import aio_pika

    body = options["payload"].encode()
    connection = await aio_pika.connect(broker_url())
    latencies: list[float] = []
    sent = 0
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = channel.default_exchange
        started = time.perf_counter()
        deadline = started + float(options["seconds"])

        async def loop() -> None:
            nonlocal sent
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                await exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                     content_type="application/json"),
                    routing_key=options["queue"],
                )
                latencies.append((time.perf_counter() - t0) * 1000)
                sent += 1

        await asyncio.gather(*(loop() for _ in range(int(options["inflight"]))))
        seconds = time.perf_counter() - started
    latencies.sort()
    return {"msgs": sent, "seconds": seconds, "rate": sent / seconds,
            "p50_ms": _percentile(latencies, 50), "p99_ms": _percentile(latencies, 99)}


async def consume(options: dict[str, Any]) -> dict[str, Any]:
    import aio_pika

    connection = await aio_pika.connect(broker_url())
    acked = 0
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=int(options["prefetch"]))
        queue = await channel.declare_queue(options["queue"], durable=True)

        async def on_message(message: Any) -> None:
            nonlocal acked
            await message.ack()
            acked += 1

        started = time.perf_counter()
        tag = await queue.consume(on_message, no_ack=False)
        await asyncio.sleep(float(options["seconds"]))
        done = acked
        seconds = time.perf_counter() - started
        with contextlib.suppress(Exception):
            await queue.cancel(tag)
    return {"msgs": done, "seconds": seconds, "rate": done / seconds}


def _side(mode: str, options: dict[str, Any]) -> subprocess.Popen[str]:
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return subprocess.Popen([sys.executable, "-m", "bench.peers.rabbitmq", mode, json.dumps(options)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=repo)


def _result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    for line in out.splitlines():
        if line.startswith("BENCH_RESULT "):
            parsed: dict[str, Any] = json.loads(line.split(" ", 1)[1])
            return parsed
    raise RuntimeError(f"rabbitmq side failed: {err[-1500:]}")


def run(seconds: float, payload: str, inflight: int = 64, prefetch: int = 100) -> dict[str, Any]:
    """Publish alone, then producers and a consumer together; each on a fresh durable queue."""
    results: dict[str, Any] = {}
    for phase in ("publish", "end_to_end"):
        queue = f"bench-{phase}-{uuid.uuid4().hex[:8]}"
        asyncio.run(_declare(queue))
        try:
            options = {"queue": queue, "seconds": seconds, "payload": payload, "inflight": inflight,
                       "prefetch": prefetch}
            producer = _side("produce", options)
            consumer = _side("consume", options) if phase == "end_to_end" else None
            results[phase] = {"produce": _result(producer, seconds + 60)}
            if consumer is not None:
                results[phase]["consume"] = _result(consumer, seconds + 60)
        finally:
            with contextlib.suppress(Exception):
                asyncio.run(_declare(queue, delete=True))
    return results


def main() -> None:
    mode, options = sys.argv[1], json.loads(sys.argv[2])
    runner = {"produce": produce, "consume": consume}[mode]
    try:
        import uvloop

        result = uvloop.run(runner(options))
    except ImportError:
        result = asyncio.run(runner(options))
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
