"""The programs of docs/client.md run as written against a real server: the ten-line producer and worker, the
asyncio client and worker (the push receivers are run by test_webhooks.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from clientkit import ROOT, Server, examples
from support import wait_until

from broker.client import BrokerError, Client

EXAMPLES = examples()


def test_the_page_has_its_examples_and_the_short_ones_are_short() -> None:
    assert {"producer.py", "worker.py", "async_client.py", "async_worker.py", "receiver_starlette.py",
            "receiver_flask.py"} <= set(EXAMPLES)
    for name in ("producer.py", "worker.py"):
        code_lines = [line for line in EXAMPLES[name].splitlines() if line.strip()]
        assert len(code_lines) <= 10, (name, len(code_lines))


@pytest.fixture
def orders(client: Client) -> Iterator[str]:
    """The examples use the queue "orders": none before the test, none after it."""
    client.delete_queue("orders")
    yield "orders"
    try:
        client.delete_queue("orders")
    except BrokerError as exc:
        print(f"could not delete orders: {exc}")


def write(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_text(EXAMPLES[name])
    return path


def python(script: Path, server: Server, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script)], env=_env(server), capture_output=True, text=True,
                          timeout=timeout, cwd=script.parent, check=False)


def _env(server: Server) -> dict[str, str]:
    return {**server.env(), "PYTHONPATH": str(ROOT)}


def run_until_sigterm(script: Path, server: Server, ready: str, count: int) -> str:
    """Start a worker, wait until its output has ``count`` lines starting with ``ready``, SIGTERM it; its
    output (it must exit 0)."""
    out = script.with_suffix(".out")
    with out.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, str(script)], env=_env(server), stdout=sink,
                                stderr=subprocess.STDOUT, cwd=script.parent)
    try:
        wait_until(lambda: sum(line.startswith(ready) for line in out.read_text().splitlines()) >= count, 30,
                   what=lambda: f"{count} lines {ready!r}: {out.read_text()}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out.read_text()


def test_producer_and_worker(orders: str, client: Client, server: Server, tmp_path: Path) -> None:
    produced = python(write(tmp_path, "producer.py"), server)
    assert produced.returncode == 0, produced.stderr
    assert len([line for line in produced.stdout.splitlines() if line.startswith("published ")]) == 10
    assert client.stats(orders).available == 10
    output = run_until_sigterm(write(tmp_path, "worker.py"), server, "order ", 10)
    handled = sorted(line.split()[1] for line in output.splitlines() if line.startswith("order "))
    assert handled == sorted(f"o_{n}" for n in range(10))
    stats = client.stats(orders)
    assert (stats.available, stats.in_flight, stats.delayed) == (0, 0, 0)  # every one acked


def test_asyncio_client_and_worker(orders: str, client: Client, server: Server, tmp_path: Path) -> None:
    done = python(write(tmp_path, "async_client.py"), server)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["acked", "3", "left", "0"]
    client.publish_batch(orders, messages=[{"payload": {"order_id": f"a_{n}"}} for n in range(5)])
    output = run_until_sigterm(write(tmp_path, "async_worker.py"), server, "async order ", 5)
    assert sorted(line.split()[2] for line in output.splitlines() if line.startswith("async order ")) == [
        f"a_{n}" for n in range(5)]
    assert client.stats(orders).in_flight == 0 and client.stats(orders).available == 0


def test_worker_needs_the_environment(tmp_path: Path) -> None:
    script = write(tmp_path, "worker.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    done = subprocess.run([sys.executable, str(script)], env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode != 0 and "BROKER_URL" in done.stderr
