"""``broker serve --workers 2``: a scrape of GET /metrics answered by either process reports the requests that
both answered (prometheus-client's multiprocess mode), and the store counters of both."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
from opskit import Processes
from prometheus_client.parser import text_string_to_metric_families
from support import wait_until

KEY = "team-key-0123456789"
LISTS = 40


def _scrape(http: httpx.Client) -> tuple[float, float, float]:
    """(this process's start time, the server's count of GET /v1/queue/list, its published counter)."""
    answer = http.get("/metrics", headers={"Connection": "close"})
    assert answer.status_code == 200, answer.text
    started = lists = published = -1.0
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == "process_start_time_seconds":
                started = sample.value
            elif sample.name == "broker_http_requests_total" and sample.labels.get("route") == "/v1/queue/list":
                lists = sample.value
            elif sample.name == "broker_messages_published_total" and sample.labels.get("queue") == "jobs":
                published = sample.value
    return started, lists, published


def _worker_pids(server_pid: int) -> list[int]:
    """The uvicorn worker processes of a ``broker serve``: its children started by multiprocessing (not its
    resource tracker, nor the embedded redis-server)."""
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """While ``pid`` is stopped, the other worker accepts every new connection."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_either_process_reports_the_whole_server(procs: Processes, env: dict[str, str]) -> None:
    server = procs.serve("--workers", "2", "--no-workers", env={**env, "BROKER_API_KEYS": f"team:{KEY}"})
    wait_until(lambda: server.stderr().count("Application startup complete") == 2, 15,
               what=lambda: f"both processes started\n{server.output()}")
    first, second = _worker_pids(server.proc.pid)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}", "Connection": "close"},
                      timeout=10) as http:
        assert http.post("/v1/queue/create", json={"name": "jobs"}).status_code == 200
        # Half the requests answered by each process: the other one is paused meanwhile.
        for other in (second, first):
            with paused(other):
                for n in range(LISTS // 2):
                    assert http.get("/v1/queue/list").status_code == 200
                    assert http.post("/v1/queue/publish", json={"queue": "jobs", "payload": n}).status_code == 200
        # A scrape answered by either one reports both halves.
        for answering, other in ((first, second), (second, first)):
            with paused(other):
                _, lists, published = _scrape(http)
            assert (lists, published) == (LISTS, LISTS), (answering, lists, published)
    assert server.stop() == 0, server.output()


def test_one_process_counts_its_requests_in_memory(procs: Processes, env: dict[str, str]) -> None:
    server = procs.serve("--no-workers", env={**env, "BROKER_API_KEYS": f"team:{KEY}"})
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as http:
        for _ in range(3):
            assert http.get("/v1/queue/list").status_code == 200
        _, lists, _ = _scrape(http)
    assert lists == 3
    assert server.stop() == 0, server.output()
