"""The fleet under test: 2-3 `session-metrics-exporter` processes on one Redis URL, each with its
own `--journal-dir` and a short `--redis-retry-interval`, as the README's "Running several
replicas" runs them. A replica may have its journal on a small disk (`SmallDisk`) or its wall
clock under the test's control (`SteppedClock`).

`routable` is what a load balancer with readiness checks would send requests to: a replica
leaves it when the nemesis kills it and joins again once `/-/ready` answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.support.exporter_process import ExporterProcess
from tests.support.faketime import SteppedClock
from tests.support.full_disk import SmallDisk, mount_permitted, mount_small_disk, unmount

RETRY_INTERVAL = 0.2
JOURNAL_DISK_BYTES = 4 << 20
READY_WITHIN = 20.0


@dataclass(frozen=True, slots=True)
class ReplicaSpec:
    name: str
    small_disk: bool = False  # the journal on a size-capped tmpfs (the full-disk fault)
    stepped_clock: bool = False  # the wall clock under libfaketime (the clock-step fault)


def replica_specs(
    count: int, *, small_disk: str = "", stepped_clock: str = ""
) -> list[ReplicaSpec]:
    """Replicas A, B, C... ; the one named `small_disk` / `stepped_clock` gets that feature."""
    names = [chr(ord("A") + index) for index in range(count)]
    return [
        ReplicaSpec(name, small_disk=name == small_disk, stepped_clock=name == stepped_clock)
        for name in names
    ]


class Fleet:
    def __init__(
        self,
        redis_url: str,
        specs: list[ReplicaSpec],
        ttl: float = 120.0,
        workdir: Path | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.ttl = ttl
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="torture-fleet-"))
        self.specs = {spec.name: spec for spec in specs}
        self.clocks: dict[str, SteppedClock] = {}
        self.disks: dict[str, SmallDisk] = {}
        self.replicas: dict[str, ExporterProcess] = {}
        self.routable: set[str] = set()
        self._cold = 0
        for spec in specs:
            self.replicas[spec.name] = self._replica(spec)

    @property
    def names(self) -> list[str]:
        return list(self.replicas)

    def _replica(self, spec: ReplicaSpec) -> ExporterProcess:
        journal = self.workdir / f"journal-{spec.name}"
        env: dict[str, str] = {}
        # Without permission to mount, the replica keeps its journal on the ordinary disk; the
        # full-disk fault then fails under CI or skips locally (`require_mount`).
        if spec.small_disk and mount_permitted():
            self.disks[spec.name] = mount_small_disk(journal, JOURNAL_DISK_BYTES)
        else:
            journal.mkdir(parents=True, exist_ok=True)
        if spec.stepped_clock:
            clock = SteppedClock(self.workdir / f"clock-{spec.name}")
            self.clocks[spec.name] = clock
            env = clock.env()
        return ExporterProcess(
            spec.name, self.flags(journal), self.workdir / f"{spec.name}.log", env
        )

    def flags(self, journal: Path) -> dict[str, str]:
        return {
            "redis_url": self.redis_url,
            "journal_dir": str(journal),
            "redis_retry_interval": str(RETRY_INTERVAL),
            "session_ttl": str(self.ttl),
        }

    async def start(self) -> None:
        """Start every replica and wait until each is ready; fail with its log if one is not."""
        for replica in self.replicas.values():
            replica.start()
        ready = await asyncio.gather(*(wait_ready(r) for r in self.replicas.values()))
        for replica, ok in zip(self.replicas.values(), ready, strict=True):
            assert ok, f"replica {replica.name} did not start:\n{replica.log_tail()}"
        # A fleet whose memory tiers are bypassed would test nothing of coherence.
        coherent = await asyncio.gather(*(wait_coherent(r) for r in self.replicas.values()))
        for replica, ok in zip(self.replicas.values(), coherent, strict=True):
            assert ok, f"replica {replica.name} never tracked its keys:\n{replica.log_tail()}"
            self.routable.add(replica.name)

    def kill(self, name: str) -> None:
        self.routable.discard(name)
        self.replicas[name].kill()

    async def restart(self, name: str, within: float = READY_WITHIN) -> bool:
        """Start a stopped replica again on the same journal directory; whether it got ready."""
        replica = self.replicas[name]
        if replica.running:
            replica.kill()
        replica.start()
        if await wait_ready(replica, within):
            self.routable.add(name)
            return True
        return False

    async def ensure_running(self) -> list[str]:
        """Start again any replica a previous test left dead; the names started."""
        dead = [name for name, replica in self.replicas.items() if not replica.running]
        for name in dead:
            disk = self.disks.get(name)
            if disk is not None:
                disk.free()
            assert await self.restart(name), self.replicas[name].log_tail()
        for clock in self.clocks.values():
            clock.step(0)
        self.routable = set(self.replicas)
        return dead

    def cold_replica(self) -> ExporterProcess:
        """A replica that has never served anything: a fresh journal, an empty memory tier."""
        self._cold += 1
        name = f"cold{self._cold}"
        journal = self.workdir / f"journal-{name}"
        journal.mkdir(parents=True)
        return ExporterProcess(name, self.flags(journal), self.workdir / f"{name}.log")

    def stop(self) -> None:
        """Stop every replica, unmount every small disk. Safe to call twice."""
        self.routable.clear()
        for replica in self.replicas.values():
            replica.stop()
        for disk in self.disks.values():
            if os.path.ismount(disk.path):
                unmount(disk.path)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tails(self, lines: int = 15) -> dict[str, str]:
        return {name: replica.log_tail(lines) for name, replica in self.replicas.items()}


async def wait_ready(replica: ExporterProcess, within: float = READY_WITHIN) -> bool:
    """Poll `GET /-/ready` until it answers 200 (True) or the process exits or time runs out."""
    deadline = time.monotonic() + within
    timeout = aiohttp.ClientTimeout(total=1)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while time.monotonic() < deadline and replica.running:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with http.get(f"{replica.base_url}/-/ready") as response:
                    if response.status == 200:
                        return True
            await asyncio.sleep(0.05)
    return False


async def wait_coherent(replica: ExporterProcess, within: float = READY_WITHIN) -> bool:
    """Poll `/api/session-metrics/persistence` until invalidation tracking is active (True)."""
    deadline = time.monotonic() + within
    timeout = aiohttp.ClientTimeout(total=1)
    url = f"{replica.base_url}/api/session-metrics/persistence"
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while time.monotonic() < deadline and replica.running:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with http.get(url) as response:
                    if (await response.json())["coherence"]["tracking_active"]:
                        return True
            await asyncio.sleep(0.05)
    return False
