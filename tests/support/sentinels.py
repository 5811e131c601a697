"""A Redis shard managed by Redis Sentinel, of real processes: a durable primary (AOF, fsync always) with
replicas, and three sentinels, each on its own loopback port. ``failover()`` SIGKILLs the current primary,
waits until the sentinels have promoted a replica, and starts the killed node again as a replica of the new
primary (on its own data directory), so a shard can fail over any number of times in a row."""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from .fleet import Fleet, RedisNode
from .polling import wait_until
from .ports import free_port
from .processes import redis_ready, stop_process

MASTER = "broker"


@dataclass
class SentinelProcess:
    directory: Path
    monitored_port: int
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SentinelProcess:
        from broker.embedded.supervisor import find_redis_server

        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {self.monitored_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 4000\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        with open(self.directory / "sentinel.log", "ab") as log:
            self.proc = subprocess.Popen([find_redis_server(), str(config), "--sentinel"], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: redis_ready_sentinel(self.port), 15, what=f"sentinel on port {self.port}")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=5)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


def redis_ready_sentinel(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=2).ping())
    except redis.RedisError:
        return False


@dataclass
class SentinelShard:
    """One primary, ``replicas`` replicas and three sentinels, every process registered with ``fleet``."""

    fleet: Fleet
    replicas: int = 1
    nodes: list[RedisNode] = field(default_factory=list)
    sentinels: list[SentinelProcess] = field(default_factory=list)
    failovers: int = 0

    def start(self) -> SentinelShard:
        primary = self.fleet.redis(name="node-0")
        self.nodes.append(primary)
        for i in range(self.replicas):
            node = self.fleet.redis("--replicaof", "127.0.0.1", str(primary.port), name=f"node-{i + 1}")
            self.nodes.append(node)
        for node in self.nodes[1:]:
            wait_until(lambda n=node: self.link_up(n), 30, what=f"replica on {node.port} in sync")
        for i in range(3):
            sentinel = SentinelProcess(self.fleet.workdir / f"sentinel-{i}", primary.port)
            self.sentinels.append(sentinel.start())
            self.fleet.others.append(sentinel.proc)  # type: ignore[arg-type]
        wait_until(lambda: self.sentinels_agree(), 30, what="the sentinels see each other and the replicas")
        return self

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER}"

    def link_up(self, node: RedisNode) -> bool:
        try:
            info = node.client().info("replication")
        except redis.RedisError:
            return False
        return info.get("role") == "slave" and info.get("master_link_status") == "up"

    def sentinels_agree(self) -> bool:
        try:
            for sentinel in self.sentinels:
                state = sentinel.client().sentinel_master(MASTER)
                if int(state["num-other-sentinels"]) < 2 or int(state["num-slaves"]) < self.replicas:
                    return False
        except (redis.RedisError, KeyError):
            return False
        return True

    def primary_port(self) -> int | None:
        """The port the sentinels name as the primary (the majority's answer)."""
        answers: dict[int, int] = {}
        for sentinel in self.sentinels:
            try:
                _, port = sentinel.client().sentinel_get_master_addr_by_name(MASTER)
            except (redis.RedisError, TypeError):
                continue
            answers[int(port)] = answers.get(int(port), 0) + 1
        best = max(answers.items(), key=lambda kv: kv[1], default=None)
        return best[0] if best and best[1] >= 2 else None

    def node_on(self, port: int) -> RedisNode:
        return next(n for n in self.nodes if n.port == port)

    def failover(self, timeout: float = 60) -> dict[str, float]:
        """SIGKILL the primary; wait for the promotion; restart the old primary as a replica of the new one.
        Returns the seconds each step took."""
        old_port = self.primary_port()
        if old_port is None:
            raise AssertionError("the sentinels do not agree on a primary")
        old = self.node_on(old_port)
        began = time.monotonic()
        old.kill(signal.SIGKILL)
        wait_until(lambda: (p := self.primary_port()) is not None and p != old_port, timeout,
                   what="the sentinels promoting a replica")
        promoted = time.monotonic() - began
        new_port = self.primary_port()
        old.extra = ("--replicaof", "127.0.0.1", str(new_port))
        old.start()
        # In sync: every node but the one the sentinels name is a replica with its link up. Usually the old
        # primary under the new one; on a loaded machine the sentinels may fail over once more meanwhile (a
        # primary that answered no PING for down-after-milliseconds), and then the roles are the other way.
        wait_until(self.in_sync, timeout, what="every node but the primary in sync as a replica")
        self.failovers += 1
        return {"promoted_s": round(promoted, 2), "replica_back_s": round(time.monotonic() - began, 2)}

    def in_sync(self) -> bool:
        port = self.primary_port()
        return port is not None and all(self.link_up(n) for n in self.nodes if n.port != port)

    def primary_ready(self) -> bool:
        port = self.primary_port()
        return port is not None and redis_ready(port)
