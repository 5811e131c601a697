"""The durability check of an external Redis: refuse what can lose acknowledged messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from opskit import Processes
from support import clean_env
from support.fleet import DURABLE

from broker.store.durability import check_durability, redact_url


def test_serve_refuses_a_redis_without_aof(procs: Processes, tmp_path: Any) -> None:
    _, port = procs.redis_server("--appendonly", "no")
    env = clean_env(BROKER_REDIS_URL=f"redis://127.0.0.1:{port}/0", BROKER_DATA_DIR=str(tmp_path / "data"))
    result = procs.run("serve", "--port", "1", env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("broker: error: Redis at redis://127.0.0.1:")
    assert "appendonly" in result.stderr and "appendonly yes" in result.stderr
    assert "BROKER_ACCEPT_WEAK_DURABILITY=1" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists(), "the embedded store must not start when a URL is given"


def test_serve_accepts_weak_durability_when_told(procs: Processes) -> None:
    _, port = procs.redis_server("--appendonly", "no")
    env = clean_env(BROKER_REDIS_URL=f"redis://127.0.0.1:{port}/0", BROKER_ACCEPT_WEAK_DURABILITY="1")
    server = procs.serve(env=env)
    assert "warning: appendonly is 'no'" in server.stderr()
    assert f"store: Redis at redis://127.0.0.1:{port}/0" in server.stderr()
    key = server.created_key()
    assert key
    ready = httpx.get(f"{server.url}/v1/queue/list", headers={"Authorization": f"Bearer {key}"}, timeout=5)
    assert ready.status_code == 200
    assert server.stop() == 0


@pytest.fixture
def durable_redis(procs: Processes) -> int:
    _, port = procs.redis_server(*DURABLE)
    return port


async def _report(port: int, **config: str) -> Any:
    client = aioredis.Redis(port=port)
    try:
        for name, value in config.items():
            await client.config_set(name, value)
        return await check_durability(client)
    finally:
        await client.aclose()


async def test_durable_redis_passes(durable_redis: int) -> None:
    report = await _report(durable_redis)
    assert report.ok and report.verified and not report.warnings
    assert report.redis_version


async def test_eviction_policy_is_a_problem(durable_redis: int) -> None:
    report = await _report(durable_redis, **{"maxmemory-policy": "allkeys-lru"})
    [problem] = report.problems
    assert problem.startswith("maxmemory-policy is 'allkeys-lru'") and "noeviction" in problem


async def test_no_fsync_during_rewrite_is_a_problem(durable_redis: int) -> None:
    report = await _report(durable_redis, **{"no-appendfsync-on-rewrite": "yes"})
    [problem] = report.problems
    assert problem.startswith("no-appendfsync-on-rewrite is 'yes'")


async def test_everysec_is_a_warning(durable_redis: int) -> None:
    report = await _report(durable_redis, appendfsync="everysec")
    assert report.ok
    assert any("appendfsync is 'everysec'" in w for w in report.warnings)


async def test_config_not_permitted_warns_and_continues(durable_redis: int) -> None:
    admin = aioredis.Redis(port=durable_redis)
    try:
        await admin.execute_command("ACL", "SETUSER", "app", "on", ">app-password", "~*", "&*", "+@all", "-config")
    finally:
        await admin.aclose()
    client = aioredis.Redis(port=durable_redis, username="app", password="app-password")
    try:
        report = await check_durability(client)
    finally:
        await client.aclose()
    assert report.ok and not report.verified
    assert "CONFIG GET refused" in report.warnings[-1]


def test_serve_continues_when_config_is_not_permitted(procs: Processes, durable_redis: int) -> None:
    import redis

    admin = redis.Redis(port=durable_redis)
    try:
        admin.execute_command("ACL", "SETUSER", "app", "on", ">app-password", "~*", "&*", "+@all", "-config")
    finally:
        admin.close()
    url = f"redis://app:app-password@127.0.0.1:{durable_redis}/0"
    server = procs.serve(env=clean_env(BROKER_REDIS_URL=url))
    assert "CONFIG GET refused" in server.stderr()
    assert "app-password" not in server.stderr() + server.stdout(), "the password was printed"
    assert server.stop() == 0


def test_redact_url() -> None:
    assert redact_url("redis://:secret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact_url("redis://user:secret@host/0") == "redis://user:***@host/0"
    assert redact_url("unix:///run/redis.sock") == "unix:///run/redis.sock"


async def test_the_production_config_passes(procs: Processes, tmp_path: Path) -> None:
    """deploy/redis.conf is valid for this Redis and passes the check (its paths moved to tmp_path)."""
    source = Path(__file__).resolve().parents[2] / "deploy" / "redis.conf"
    paths = {"dir": tmp_path, "unixsocket": tmp_path / "r.sock", "pidfile": tmp_path / "r.pid", "logfile": ""}
    lines = []
    for line in source.read_text().splitlines():
        name = line.split(" ", 1)[0]
        lines.append(f'{name} "{paths[name]}"' if name in paths else line)
    config = tmp_path / "redis.conf"
    config.write_text("\n".join(lines) + "\n")
    _, port = procs.redis_server("--supervised", "no", config=config)
    report = await _report(port)
    assert report.ok and report.verified and not report.warnings, report
