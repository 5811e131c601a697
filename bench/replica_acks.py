"""The cost of BROKER_REPLICA_ACKS: publishes through the store (one process, the pipelined connection) on a
primary with one replica on this machine (both AOF with fsync always), without and with a WAIT for the
replica, single messages and batches of 100, several concurrent callers.

    .venv/bin/python -m bench.replica_acks [--seconds 5] [--callers 64]

It starts and stops its own two redis-server processes on free loopback ports and prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import redis
import redis.asyncio as aioredis

from broker.schemas import CreateQueueRequest
from broker.store.queues import OutgoingMessage, Store
from broker.store.scripts import ReplicaAcks, Scripts

DURABLE = ["--appendonly", "yes", "--appendfsync", "always", "--save", "", "--maxmemory-policy", "noeviction"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(directory: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True)
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
                             "127.0.0.1", "--dir", str(directory), *DURABLE, *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port).ping():
                return proc
        except redis.RedisError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server on {port} did not start")


async def measure(url: str, acks: int, batch: int, seconds: float, callers: int) -> tuple[float, float, float]:
    client = aioredis.Redis.from_url(url)
    store = Store(client, Scripts(client, acks=ReplicaAcks(acks, 1000)))
    project = f"bench-acks-{acks}-{batch}"
    await store.create_queue(project, CreateQueueRequest(name="q"))
    messages = [OutgoingMessage(b'{"n":1}') for _ in range(batch)]
    latencies: list[float] = []
    done = 0
    stop = time.monotonic() + seconds

    async def caller() -> None:
        nonlocal done
        while time.monotonic() < stop:
            started = time.monotonic()
            await store.publish(project, "q", messages, batch=batch > 1)
            latencies.append(time.monotonic() - started)
            done += batch

    began = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = time.monotonic() - began
    await store.scripts.close()
    await client.aclose()
    latencies.sort()
    return done / elapsed, statistics.median(latencies) * 1000, latencies[int(len(latencies) * 0.99)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--callers", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-acks-") as tmp:
        primary_port, replica_port = free_port(), free_port()
        primary = start(Path(tmp) / "primary", primary_port)
        replica = start(Path(tmp) / "replica", replica_port, "--replicaof", "127.0.0.1", str(primary_port))
        try:
            time.sleep(1.0)  # the replica's first sync
            url = f"redis://127.0.0.1:{primary_port}/0"
            print(f"| publish | BROKER_REPLICA_ACKS | msgs/s | p50 ms | p99 ms |  ({args.callers} callers, "
                  f"{args.seconds:g} s each)")
            print("|---|---|---|---|---|")
            for batch in (1, 100):
                for acks in (0, 1):
                    rate, p50, p99 = asyncio.run(measure(url, acks, batch, args.seconds, args.callers))
                    what = "single" if batch == 1 else f"batch of {batch}"
                    print(f"| {what} | {acks} | {rate:,.0f} | {p50:.2f} | {p99:.2f} |")
        finally:
            for proc in (replica, primary):
                proc.terminate()
                proc.wait(30)


if __name__ == "__main__":
    main()
