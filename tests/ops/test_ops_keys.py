"""``broker keys create|list|revoke`` on the embedded store, with and without a running server."""

from __future__ import annotations

from pathlib import Path

import httpx
import msgspec
import redis
from opskit import Processes
from support import clean_env, wait_until

from broker.store.apikeys import StoredKey, digest
from broker.store.keys import AUTH_KEYS


def test_keys_round_trip(procs: Processes, env: dict[str, str], data_dir: Path) -> None:
    created = procs.run("keys", "create", "--project", "acme", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("bk_") and len(key.splitlines()) == 1
    assert not (data_dir / "redis.pid").exists(), "the store started for the command was not stopped"

    listed = procs.run("keys", "list", env={**env, "BROKER_API_KEYS": "ops:ops-key-0123456789"})
    assert listed.returncode == 0, listed.stderr
    assert key not in listed.stdout, "a whole key was listed"
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert rows[key[:11] + "..."][1:3] == ["acme", "store"]
    assert rows["ops-key-012..."][1:] == ["ops", "env", "-"]

    server = procs.serve(env=env)
    assert server.created_key() is None
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=5) as http:
        assert http.get("/v1/queue/list").status_code == 200
        revoked = procs.run("keys", "revoke", key[:11] + "...", env=env)  # as shown by `keys list`
        assert revoked.returncode == 0, revoked.stderr
        wait_until(lambda: http.get("/v1/queue/list").status_code == 401, 1.5, what="the revoked key refused")
        body = http.get("/v1/queue/list").json()
        assert body["error"]["code"] == "UNAUTHORIZED"

    again = procs.run("keys", "revoke", key, env=env)
    assert again.returncode == 1
    assert again.stderr.startswith("broker: error: no API key matches")
    assert key not in again.stderr, "a whole key was echoed"
    assert "acme" not in procs.run("keys", "list", env=env).stdout


def test_revoke_refuses_short_and_ambiguous_prefixes(procs: Processes) -> None:
    _, port = procs.redis_server("--appendonly", "yes")
    env = clean_env(BROKER_REDIS_URL=f"redis://127.0.0.1:{port}/0")
    client = redis.Redis(port=port)
    try:
        for prefix in ("bk_AAAAAAAA", "bk_AAAAAAAB"):
            record = StoredKey(project="p", prefix=prefix, created_at=0)
            client.hset(AUTH_KEYS, digest(prefix + "-rest-of-the-key"), msgspec.json.encode(record))
    finally:
        client.close()

    too_short = procs.run("keys", "revoke", "bk_", env=env)
    assert too_short.returncode == 1
    assert "too short" in too_short.stderr
    ambiguous = procs.run("keys", "revoke", "bk_AAAAAA", env=env)
    assert ambiguous.returncode == 1
    assert "matches 2 keys" in ambiguous.stderr
    exact = procs.run("keys", "revoke", "bk_AAAAAAAB", env=env)
    assert exact.returncode == 0, exact.stderr
    listed = procs.run("keys", "list", env=env).stdout
    assert "bk_AAAAAAAA..." in listed
    assert "bk_AAAAAAAB" not in listed
