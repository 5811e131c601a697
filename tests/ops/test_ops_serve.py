"""``broker serve`` on the embedded store: first-start key, durability across a restart, clean stop."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
from opskit import Processes
from support import alive, free_port, wait_until


def _redis_pid(data_dir: Path) -> int:
    return int((data_dir / "redis.pid").read_text().strip())


def test_restart_keeps_queues_and_messages(procs: Processes, env: dict[str, str], data_dir: Path) -> None:
    first = procs.serve(env=env)
    key = first.created_key()
    assert key, first.output()
    assert "embedded redis-server" in first.stderr()
    assert f"listening on http://127.0.0.1:{first.port}" in first.stderr()
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=first.url, headers=headers, timeout=10) as http:
        assert http.get("/readyz").status_code == 200
        assert http.post("/v1/queue/create", json={"name": "orders"}).status_code == 200
        published = http.post("/v1/queue/publish", json={"queue": "orders", "payload": {"n": 42}})
        assert published.status_code == 200, published.text
    message_id = published.json()["message_id"]
    redis_pid = _redis_pid(data_dir)
    assert alive(redis_pid)

    assert first.stop(signal.SIGTERM) == 0, first.output()
    assert not alive(redis_pid), "the embedded redis-server outlived broker serve"
    assert "embedded store stopped" in first.stderr()

    second = procs.serve(env=env)
    assert second.created_key() is None, "a key was created although one exists"
    assert "Created API key" not in second.stdout()
    with httpx.Client(base_url=second.url, headers=headers, timeout=10) as http:
        assert http.get("/v1/queue/get/orders").status_code == 200
        consumed = http.post("/v1/queue/consume", json={"queue": "orders"}).json()["messages"]
        assert [(m["message_id"], m["payload"]) for m in consumed] == [(message_id, {"n": 42})]
        acked = http.post("/v1/queue/ack", json={"queue": "orders", "message_id": message_id})
        assert acked.status_code == 200
    redis_pid = _redis_pid(data_dir)
    assert second.stop(signal.SIGINT) == 0, second.output()
    assert not alive(redis_pid)


def test_two_server_processes_share_the_embedded_store(procs: Processes, env: dict[str, str], data_dir: Path) -> None:
    env = {**env, "BROKER_API_KEYS": "team:team-key-0123456789"}
    server = procs.serve("--workers", "2", "--no-workers", env=env)
    assert "2 process(es)" in server.stderr()
    wait_until(lambda: server.stderr().count("Application startup complete") == 2, 15,
               what=lambda: f"both processes started\n{server.output()}")
    assert "background jobs off" in server.stderr()
    assert server.created_key() is None, "BROKER_API_KEYS counts as an existing key"
    headers = {"Authorization": "Bearer team-key-0123456789"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
        for _ in range(6):  # spread over both processes
            assert http.get("/v1/queue/list", headers={"Connection": "close"}).status_code == 200
    redis_pid = _redis_pid(data_dir)
    assert server.stop() == 0, server.output()
    assert not alive(redis_pid)


def test_a_second_serve_on_the_same_data_dir_is_refused(procs: Processes, env: dict[str, str]) -> None:
    first = procs.serve(env=env)
    result = procs.run("serve", "--port", str(free_port()), env=env)
    assert result.returncode == 1
    assert "is in use by broker process" in result.stderr
    assert "Traceback" not in result.stderr
    busy_port = procs.run("serve", "--port", str(first.port), env=env)
    assert busy_port.returncode == 1
    assert busy_port.stderr.startswith(f"broker: error: cannot listen on 127.0.0.1:{first.port}")


def test_a_crashed_embedded_store_is_restarted(procs: Processes, env: dict[str, str], data_dir: Path) -> None:
    server = procs.serve(env=env)
    crashed = _redis_pid(data_dir)
    os.kill(crashed, signal.SIGKILL)
    wait_until(lambda: not alive(crashed), 5, what="the killed redis-server gone")
    wait_until(lambda: httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200, 15,
               ignoring=(httpx.TransportError,), what=lambda: f"ready again\n{server.output()}")
    wait_until(lambda: "embedded redis-server restarted" in server.stderr(), 5,
               what=lambda: f"the restart logged\n{server.output()}")
    assert _redis_pid(data_dir) != crashed
    assert server.stop() == 0
