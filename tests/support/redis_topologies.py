"""Multi-node Redis deployments on loopback for the scale-out tests: a 3-master Cluster and a
Sentinel watching one master. Each node is a real redis-server process that a test can kill."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.redis_server import RedisServer, free_port, missing_dependency, wait_until


class RedisCluster:
    """Three masters, no replicas; `url` is the exporter's `redis+cluster://` syntax."""

    def __init__(self, size: int = 3) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
        self.nodes: list[RedisServer] = []
        for index in range(size):
            port = free_port()
            node_dir = self.workdir / str(index)
            node_dir.mkdir()
            extra = (
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(node_dir / "nodes.conf"),
                "--cluster-node-timeout",
                "2000",
                "--cluster-port",
                str(free_port()),
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
                "0",
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

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class RedisSentinel:
    """One master watched by one sentinel; `url` is `redis+sentinel://host:port/<master>`."""

    MASTER_NAME = "sessions"

    def __init__(self) -> None:
        self.master = RedisServer()
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="redis-sentinel-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.MASTER_NAME}"

    def start(self) -> RedisSentinel:
        self.master.start()
        config = self.workdir / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.workdir}\n"
            f"sentinel monitor {self.MASTER_NAME} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {self.MASTER_NAME} 2000\n"
        )
        self.process = subprocess.Popen(
            ["redis-server", str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        sentinel = RedisServer(port=self.port)
        wait_until(lambda: sentinel.client().execute_command("SENTINEL", "MASTERS"), timeout=15)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)
        self.master.stop()


def require_redis_tools() -> None:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        missing_dependency("redis-server and redis-cli", "install the Debian package redis-server")
