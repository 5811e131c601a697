"""``broker serve --workers 2``: a scrape of GET /metrics answered by either process reports the requests that
both answered (prometheus-client's multiprocess mode), and the store counters of both."""

from __future__ import annotations

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


def test_either_process_reports_the_whole_server(procs: Processes, env: dict[str, str]) -> None:
    server = procs.serve("--workers", "2", "--no-workers", env={**env, "BROKER_API_KEYS": f"team:{KEY}"})
    wait_until(lambda: server.stderr().count("Application startup complete") == 2, 15,
               what=lambda: f"both processes started\n{server.output()}")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as http:
        assert http.post("/v1/queue/create", json={"name": "jobs"}).status_code == 200
        for n in range(LISTS):  # a new connection each: the two processes share them
            assert http.get("/v1/queue/list", headers={"Connection": "close"}).status_code == 200
            assert http.post("/v1/queue/publish", json={"queue": "jobs", "payload": n},
                             headers={"Connection": "close"}).status_code == 200
        answered_by: set[float] = set()
        for _ in range(200):
            started, lists, published = _scrape(http)
            assert (lists, published) == (LISTS, LISTS), (started, lists, published)
            answered_by.add(started)
            if len(answered_by) == 2:
                break
        assert len(answered_by) == 2, "every scrape was answered by the same process"
    assert server.stop() == 0, server.output()
