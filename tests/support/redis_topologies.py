"""Multi-node Redis deployments on loopback for the scale-out and torture tests: a Cluster of 3
masters (optionally each with a replica, for failovers) and a master watched by sentinels
(optionally with a replica and a quorum of sentinels, for failovers). Each node is a real
redis-server process that a test can kill."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import redis

from tests.support.redis_server import RedisServer, free_port, missing_dependency, wait_until


class RedisCluster:
    """`size` masters, each with `replicas` replicas (none by default); `url` is the exporter's
    `redis+cluster://` syntax. `nodes` holds every node, masters first as created; roles move
    with failovers: `masters()` and `replicas_of()` ask the cluster."""

    def __init__(self, size: int = 3, replicas: int = 0, node_timeout_ms: int = 2000) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
        self.replicas = replicas
        self.nodes: list[RedisServer] = []
        for index in range(size * (1 + replicas)):
            port = free_port()
            node_dir = self.workdir / str(index)
            node_dir.mkdir()
            extra = (
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(node_dir / "nodes.conf"),
                "--cluster-node-timeout",
                str(node_timeout_ms),
                "--cluster-port",
                str(free_port()),
                "--repl-diskless-sync-delay",  # a replica's full sync starts at once
                "0",
            )
            self.nodes.append(RedisServer(port=port, extra_args=extra, workdir=node_dir))

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_until(self._healthy, timeout=30)
        return self

    def _healthy(self) -> bool:
        return all(
            node.client().cluster("info").get("cluster_state") == "ok" for node in self.nodes
        )

    def masters(self) -> list[RedisServer]:
        """The nodes that are masters now (by their own account)."""
        return [node for node in self.nodes if _running(node) and role(node) == "master"]

    def replicas_of(self, master: RedisServer) -> list[RedisServer]:
        return [
            node
            for node in self.nodes
            if _running(node) and role(node) == "slave" and master_port(node) == master.port
        ]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class RedisSentinel:
    """A master watched by sentinels; `url` is `redis+sentinel://host:port,.../<master>`.

    By default one master and one sentinel (quorum 1). With `replicas` (replicas of the master)
    and several `sentinels` (quorum: a majority) it can fail over, planned (`SENTINEL FAILOVER`)
    or not (the master killed); `master` stays the server started as master, `current_master()`
    asks the sentinels which one it is now. `extra_args` go to every data server.
    """

    MASTER_NAME = "sessions"

    def __init__(self, replicas: int = 0, sentinels: int = 1, down_after_ms: int = 2000) -> None:
        # A replica's full sync starts at once (diskless sync waits 5 s for more replicas).
        fast_sync = ("--repl-diskless-sync-delay", "0")
        self.master = RedisServer(extra_args=fast_sync)
        self.replicas = [RedisServer(extra_args=fast_sync) for _ in range(replicas)]
        self.ports = [free_port() for _ in range(sentinels)]
        self.port = self.ports[0]
        self.down_after_ms = down_after_ms
        self.workdir = Path(tempfile.mkdtemp(prefix="redis-sentinel-"))
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return f"redis+sentinel://{hosts}/{self.MASTER_NAME}"

    @property
    def servers(self) -> list[RedisServer]:
        return [self.master, *self.replicas]

    def set_extra_args(self, *args: str) -> None:
        for server in self.servers:
            server.extra_args += args

    def start(self) -> RedisSentinel:
        self.master.start()
        for replica in self.replicas:
            replica.extra_args += ("--replicaof", "127.0.0.1", str(self.master.port))
            replica.start()
            wait_until(functools.partial(_linked, replica), timeout=15)
        for index in range(len(self.ports)):
            config = self.workdir / f"sentinel-{index}.conf"
            config.write_text(self._config(index))
            process = subprocess.Popen(
                ["redis-server", str(config), "--sentinel"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.processes.append(process)
        wait_until(self._ready, timeout=30)
        return self

    def _config(self, index: int) -> str:
        """Sentinel `index`'s configuration. Each is told its id, the replicas and the other
        sentinels, so they need not discover each other (hello messages every 2 s, INFO every
        10 s) before they can agree on a failover."""
        name = self.MASTER_NAME
        quorum = len(self.ports) // 2 + 1
        lines = [
            f"port {self.ports[index]}",
            "bind 127.0.0.1",
            f"dir {self.workdir}",
            f"sentinel myid {_sentinel_id(index)}",
            f"sentinel monitor {name} 127.0.0.1 {self.master.port} {quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} 10000",
        ]
        lines += [f"sentinel known-replica {name} 127.0.0.1 {r.port}" for r in self.replicas]
        lines += [
            f"sentinel known-sentinel {name} 127.0.0.1 {port} {_sentinel_id(other)}"
            for other, port in enumerate(self.ports)
            if other != index
        ]
        return "\n".join(lines) + "\n"

    def _ready(self) -> bool:
        """Every sentinel knows the master, every replica and every other sentinel."""
        for port in self.ports:
            client = RedisServer(port=port).client()
            try:
                replicas = client.sentinel_slaves(self.MASTER_NAME)
                others = client.sentinel_sentinels(self.MASTER_NAME)
            finally:
                client.close()
            if not isinstance(replicas, list) or not isinstance(others, list):
                return False
            if len(replicas) < len(self.replicas) or len(others) < len(self.ports) - 1:
                return False
        return True

    def sentinel_client(self) -> redis.Redis:
        return RedisServer(port=self.port).client()

    def current_master(self) -> RedisServer:
        """The data server the sentinels name as master now."""
        client = self.sentinel_client()
        try:
            address = client.sentinel_get_master_addr_by_name(self.MASTER_NAME)
        finally:
            client.close()
        assert isinstance(address, tuple), address
        return next(server for server in self.servers if server.port == int(address[1]))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                process.wait(5)
        for server in self.servers:
            server.stop()


def _sentinel_id(index: int) -> str:
    return f"{index + 1:040x}"


def _running(server: RedisServer) -> bool:
    return server.process is not None and server.process.poll() is None


def _info(server: RedisServer) -> dict[str, object]:
    client = server.client()
    try:
        return dict(client.info("replication"))
    finally:
        client.close()


def role(server: RedisServer) -> str:
    """`master` or `slave`, as the server's INFO says."""
    return str(_info(server)["role"])


def master_port(server: RedisServer) -> int:
    return int(str(_info(server)["master_port"]))


def _linked(replica: RedisServer) -> bool:
    return _info(replica).get("master_link_status") == "up"


def require_redis_tools() -> None:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        missing_dependency("redis-server and redis-cli", "install the Debian package redis-server")
