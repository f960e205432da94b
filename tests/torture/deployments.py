"""The Redis deployments a fleet runs on, behind one small interface for the nemesis: where the
exporters connect (`url`), which servers take writes now (`primaries()`), and `heal()`, which
waits until every node runs and the roles have converged (a failed-over master back as a
replica, the cluster `ok`) so the next fault starts from a healthy deployment.

- `standalone`: one server with AOF and `appendfsync always` (it keeps what it acknowledged);
- `volatile`: one server without persistence (a restart loses everything);
- `sentinel`: master + replica, 3 sentinels (quorum 2), both data servers with AOF;
- `cluster`: 3 masters + 3 replicas, every node with AOF.
"""

from __future__ import annotations

import shutil
from typing import Protocol

from tests.support.redis_server import RedisServer, start_redis, wait_until
from tests.support.redis_topologies import RedisCluster, RedisSentinel, require_redis_tools, role

AOF = ("--appendonly", "yes", "--appendfsync", "always")
KINDS = ("standalone", "volatile", "sentinel", "cluster")


class Deployment(Protocol):
    kind: str

    @property
    def url(self) -> str: ...

    def servers(self) -> list[RedisServer]: ...

    def primaries(self) -> list[RedisServer]: ...

    def heal(self, timeout: float = 30) -> None: ...

    def stop(self) -> None: ...


class Standalone:
    """One redis-server; `persistent` decides whether a restart keeps its data."""

    def __init__(self, persistent: bool = True) -> None:
        self.kind = "standalone" if persistent else "volatile"
        self.server = start_redis(AOF if persistent else ())

    @property
    def url(self) -> str:
        return self.server.url

    def servers(self) -> list[RedisServer]:
        return [self.server]

    def primaries(self) -> list[RedisServer]:
        return [self.server]

    def restart_empty(self) -> None:
        """Kill it and start it on an empty data directory: Redis back without its data, as a
        server without persistence (or with its disk lost) comes back."""
        self.server.kill()
        for child in self.server.workdir.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        self.server.start()

    def heal(self, timeout: float = 30) -> None:
        self.server.ensure_running()

    def stop(self) -> None:
        self.server.stop()


class Sentinel:
    def __init__(self) -> None:
        require_redis_tools()
        self.kind = "sentinel"
        self.topology = RedisSentinel(replicas=1, sentinels=3, down_after_ms=1000)
        self.topology.set_extra_args(*AOF)
        self.topology.start()

    @property
    def url(self) -> str:
        return self.topology.url

    def servers(self) -> list[RedisServer]:
        return self.topology.servers

    def primaries(self) -> list[RedisServer]:
        return [self.topology.current_master()]

    def heal(self, timeout: float = 30) -> None:
        """Every server runs; the sentinels' master is the only master; replicas are in sync."""
        for server in self.servers():
            server.ensure_running()
        wait_until(self._converged, timeout=timeout)

    def _converged(self) -> bool:
        master = self.topology.current_master()
        others = [server for server in self.servers() if server is not master]
        return role(master) == "master" and all(_in_sync(server, master) for server in others)

    def stop(self) -> None:
        self.topology.stop()


class Cluster:
    def __init__(self) -> None:
        require_redis_tools()
        self.kind = "cluster"
        self.topology = RedisCluster(size=3, replicas=1, node_timeout_ms=1000)
        for node in self.topology.nodes:
            node.extra_args += AOF
        self.topology.start()

    @property
    def url(self) -> str:
        return self.topology.url

    def servers(self) -> list[RedisServer]:
        return self.topology.nodes

    def primaries(self) -> list[RedisServer]:
        return self.topology.masters()

    def heal(self, timeout: float = 30) -> None:
        """Every node runs; 3 masters, each with a replica in sync; every node says `ok`."""
        for server in self.servers():
            server.ensure_running()
        wait_until(self._converged, timeout=timeout)

    def _converged(self) -> bool:
        masters = self.topology.masters()
        if len(masters) != 3:
            return False
        for master in masters:
            replicas = self.topology.replicas_of(master)
            if len(replicas) != 1 or not _in_sync(replicas[0], master):
                return False
        return all(_cluster_ok(node) for node in self.servers())

    def stop(self) -> None:
        self.topology.stop()


def open_deployment(kind: str) -> Deployment:
    if kind == "standalone":
        return Standalone(persistent=True)
    if kind == "volatile":
        return Standalone(persistent=False)
    if kind == "sentinel":
        return Sentinel()
    if kind == "cluster":
        return Cluster()
    raise ValueError(f"unknown deployment {kind!r}; expected one of {', '.join(KINDS)}")


def _in_sync(replica: RedisServer, master: RedisServer) -> bool:
    client = replica.client()
    try:
        info = client.info("replication")
    finally:
        client.close()
    return (
        info.get("role") == "slave"
        and int(info.get("master_port", 0)) == master.port
        and info.get("master_link_status") == "up"
        and not info.get("master_sync_in_progress")
    )


def _cluster_ok(node: RedisServer) -> bool:
    client = node.client()
    try:
        return bool(client.cluster("info").get("cluster_state") == "ok")
    finally:
        client.close()
