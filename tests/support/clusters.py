"""A Redis Cluster of real processes: three durable primaries (AOF, fsync always) with a replica each.
``failover()`` SIGKILLs the primary that holds one slot (the tested project's), waits until its replica has
taken the slot over and the cluster is ``ok``, and starts the killed node again on its own data (its
``nodes.conf`` makes it rejoin as a replica of the promoted node), so failovers can follow each other."""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass

import redis

from .fleet import Fleet, RedisNode
from .polling import wait_until
from .ports import free_port


def cluster_port() -> int:
    """A free port a cluster node can use: Redis needs port + 10000 for its cluster bus."""
    while True:
        port = free_port()
        if port <= 55535:
            return port


@dataclass
class ClusterShards:
    fleet: Fleet
    slot_key: str  # a key of the slot whose primary failover() kills
    failovers: int = 0

    def start(self) -> ClusterShards:
        for i in range(6):
            node = RedisNode(self.fleet.workdir / f"cnode-{i}", ("--cluster-enabled", "yes", "--cluster-config-file",
                             "nodes.conf", "--cluster-node-timeout", "1000"), port=cluster_port())
            self.fleet.nodes.append(node)  # stopped with the fleet
            node.start()
        subprocess.run(
            ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in self.nodes_or_all()],
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL,
        )
        wait_until(self.healthy, 60, interval=0.2, what="the cluster forming with a replica per primary")
        return self

    def nodes_or_all(self) -> list[RedisNode]:
        return [n for n in self.fleet.nodes if n.directory.name.startswith("cnode-")]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes_or_all()[:1])

    def _info(self, node: RedisNode, section: str) -> dict[str, str]:
        try:
            with node.client() as client:
                if section == "cluster":
                    return dict(client.cluster("info"))
                return dict(client.info(section))
        except redis.RedisError:
            return {}

    def healthy(self) -> bool:
        """Every node is up, the cluster is ok everywhere, three primaries each with a synced replica."""
        nodes = self.nodes_or_all()
        if not all(n.running() for n in nodes):
            return False
        if any(self._info(n, "cluster").get("cluster_state") != "ok" for n in nodes):
            return False
        replication = [self._info(n, "replication") for n in nodes]
        primaries = [r for r in replication if r.get("role") == "master"]
        replicas = [r for r in replication if r.get("role") == "slave" and r.get("master_link_status") == "up"]
        return len(primaries) == 3 and len(replicas) == 3 and all(int(p.get("connected_slaves", 0)) == 1
                                                                 for p in primaries)

    def slot_owner(self) -> RedisNode | None:
        for node in self.nodes_or_all():
            if not node.running():
                continue
            try:
                with node.client() as client:
                    slot = int(client.cluster("keyslot", self.slot_key))
                    for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                        if int(start) <= slot <= int(end):
                            port = int(primary[1])
                            return next(n for n in self.nodes_or_all() if n.port == port)
            except redis.RedisError:
                continue
        return None

    def failover(self, timeout: float = 60) -> dict[str, float]:
        old = self.slot_owner()
        if old is None:
            raise AssertionError("no node owns the slot")
        began = time.monotonic()
        old.kill(signal.SIGKILL)

        def promoted() -> bool:
            owner = self.slot_owner()
            return owner is not None and owner is not old and self._info(owner, "cluster").get("cluster_state") == "ok"

        wait_until(promoted, timeout, interval=0.1, what="a replica taking the slot over")
        took = time.monotonic() - began
        old.start()
        wait_until(self.healthy, timeout, interval=0.2, what="the old primary back as a replica")
        self.failovers += 1
        return {"promoted_s": round(took, 2), "replica_back_s": round(time.monotonic() - began, 2)}
