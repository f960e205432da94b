"""The faults, each an async function that injects one, lets the load run through it, undoes it
and records that as a fault window of the trial's history; then it waits, load still running,
until the deployment has converged (`heal`: a failed-over master back as a replica, the cluster
`ok`). That wait is outside the window: once the fault is undone, a 503 from a fleet that reports
itself recovered counts. Scenario tests call them by
name; the random schedule (`schedule.py`) calls them through `FAULTS`.

Blocking work (starting a redis-server, waiting for a role change) runs in a worker thread so
that the load and the fleet monitor keep their pace meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import redis

from tests.support.faketime import wall_offset
from tests.support.full_disk import require_mount
from tests.support.redis_server import RedisServer
from tests.torture.deployments import Cluster, Sentinel, Standalone
from tests.torture.recorder import NemesisFailed
from tests.torture.trial import Trial

TAKEOVER_WITHIN = 20.0  # seconds for Sentinel or the Cluster to promote a replica
HEAL_WITHIN = 40.0  # seconds for every node to run again with its roles converged


def server_name(server: RedisServer) -> str:
    return f"redis:{server.port}"


async def heal(trial: Trial) -> None:
    await asyncio.to_thread(trial.deployment.heal, HEAL_WITHIN)


async def wait_for(predicate: Callable[[], bool], within: float, what: str) -> None:
    """Poll a blocking `predicate` in a worker thread until it holds."""
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise NemesisFailed(f"nemesis: {what} within {within:.0f} s")
        await asyncio.sleep(0.05)


# --- Redis processes ---------------------------------------------------------------------------


async def redis_kill(trial: Trial, down_for: float = 1.0) -> None:
    """SIGKILL the (first) primary, keep it down, start it again on its data."""
    server = trial.deployment.primaries()[0]
    volatile = trial.deployment.kind == "volatile"
    async with trial.recorder.fault("redis-kill", server_name(server), loses_data=volatile):
        server.kill()
        await trial.run_for(down_for)
        await asyncio.to_thread(server.start)
    await heal(trial)


async def redis_restart(trial: Trial, down_for: float = 0.5) -> None:
    """A graceful restart: SIGTERM (Redis flushes its AOF), then start again."""
    server = trial.deployment.primaries()[0]
    async with trial.recorder.fault("redis-restart", server_name(server)):
        await asyncio.to_thread(server.stop)
        await trial.run_for(down_for)
        await asyncio.to_thread(server.start)
    await heal(trial)


async def redis_restart_empty(trial: Trial, down_for: float = 1.0) -> None:
    """Redis back without its data, as a server without persistence restarts."""
    deployment = trial.deployment
    assert isinstance(deployment, Standalone), "an empty restart needs a standalone server"
    server = deployment.server
    async with trial.recorder.fault("redis-restart-empty", server_name(server), loses_data=True):
        server.kill()
        await trial.run_for(down_for)
        await asyncio.to_thread(deployment.restart_empty)
    await heal(trial)


async def redis_pause(trial: Trial, paused_for: float = 1.5) -> None:
    """SIGSTOP the (first) primary: connections stay open and nothing answers."""
    server = trial.deployment.primaries()[0]
    async with trial.recorder.fault("redis-pause", server_name(server)):
        server.pause()
        try:
            await trial.run_for(paused_for)
        finally:
            server.resume()
    await heal(trial)


async def redis_restarts(trial: Trial, times: int = 6, down_for: float = 0.4) -> None:
    """Several SIGKILL + restarts in a row, a short gap of load between them."""
    for _ in range(times):
        await redis_kill(trial, down_for)
        await trial.run_for(0.4)


# --- failovers ---------------------------------------------------------------------------------


async def sentinel_failover(trial: Trial) -> None:
    """`SENTINEL FAILOVER`: a planned switch to the replica, over once the sentinels name the new
    master. The old master goes on accepting writes until Sentinel converts it to a replica
    (about 10 s later; its full resync then drops what it took meanwhile): that is the fleet's
    to cope with, so the window does not wait for it (the next fault's `heal` does)."""
    deployment = trial.deployment
    assert isinstance(deployment, Sentinel), "SENTINEL FAILOVER needs the sentinel deployment"
    old = deployment.topology.current_master()
    async with trial.recorder.fault("sentinel-failover", f"master {server_name(old)}"):
        await request_failover(deployment)
        await wait_for(
            lambda: deployment.topology.current_master() is not old,
            TAKEOVER_WITHIN,
            "the sentinels did not name a new master",
        )


async def request_failover(deployment: Sentinel) -> None:
    """`SENTINEL FAILOVER`, asked again while the sentinel has no replica fit to promote yet
    (NOGOODSLAVE: the last failover's old master, a replica again, is not yet known as a good
    one; that takes a few of the sentinel's INFO rounds after `heal`)."""
    deadline = time.monotonic() + TAKEOVER_WITHIN
    while True:
        try:
            await asyncio.to_thread(_sentinel_failover, deployment)
            return
        except redis.ResponseError as exc:
            if "NOGOODSLAVE" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise NemesisFailed(f"nemesis: SENTINEL FAILOVER refused: {exc}") from exc
        await asyncio.sleep(0.5)


def _sentinel_failover(deployment: Sentinel) -> None:
    client = deployment.topology.sentinel_client()
    try:
        client.sentinel_failover(deployment.topology.MASTER_NAME)
    finally:
        client.close()


async def master_kill(trial: Trial) -> None:
    """SIGKILL a master of a Sentinel or Cluster deployment; its replica is promoted; the old
    master comes back as a replica of the new one."""
    deployment = trial.deployment
    assert isinstance(deployment, Sentinel | Cluster), "needs a deployment with failover"
    old = deployment.primaries()[0]
    async with trial.recorder.fault("master-kill", server_name(old)):
        old.kill()
        await taken_over(deployment, old)
    await heal(trial)


async def taken_over(deployment: Sentinel | Cluster, old: RedisServer) -> None:
    """Once a replica has taken over from the killed `old`, start it again (as a replica)."""
    await wait_for(
        lambda: promoted(deployment, old),
        TAKEOVER_WITHIN,
        f"no replica took over from {server_name(old)}",
    )
    await asyncio.to_thread(old.start)


def promoted(deployment: Sentinel | Cluster, old: RedisServer) -> bool:
    if isinstance(deployment, Sentinel):
        return deployment.topology.current_master() is not old
    masters = deployment.primaries()
    return len(masters) == 3 and old not in masters


async def master_kill_unreplicated(trial: Trial, lagging_for: float = 0.5) -> None:
    """SIGKILL a Cluster master while its replica lags (SIGSTOPped, its link cut, for
    `lagging_for` seconds of load), then let the replica take over: it lacks every write the
    master acknowledged meanwhile (replication is asynchronous), and the old master, back,
    resyncs from it and drops them too. Not in the random schedule: `master-kill` under load
    does the same, for fewer writes."""
    deployment = trial.deployment
    assert isinstance(deployment, Cluster), "needs the cluster deployment"
    master = deployment.primaries()[0]
    replica = deployment.topology.replicas_of(master)[0]
    async with trial.recorder.fault("master-kill", server_name(master)):
        replica.pause()  # then cut its link: what the master takes from now is never sent
        try:
            client = master.client()
            try:
                client.client_kill_filter(_type="replica")
            finally:
                client.close()
            await trial.run_for(lagging_for)
            master.kill()
        finally:
            replica.resume()
        await taken_over(deployment, master)
    await heal(trial)


async def cluster_failover(trial: Trial) -> None:
    """`CLUSTER FAILOVER` on a master's replica: a planned, coordinated switch."""
    deployment = trial.deployment
    assert isinstance(deployment, Cluster), "CLUSTER FAILOVER needs the cluster deployment"
    master = deployment.primaries()[0]
    replica = deployment.topology.replicas_of(master)[0]
    async with trial.recorder.fault("cluster-failover", server_name(master)):
        client = replica.client()
        try:
            client.execute_command("CLUSTER", "FAILOVER")  # type: ignore[no-untyped-call]
        finally:
            client.close()
        await wait_for(
            lambda: replica in deployment.primaries(),
            TAKEOVER_WITHIN,
            f"{server_name(replica)} did not take over",
        )
    await heal(trial)


# --- writes refused while reads are served -----------------------------------------------------


async def redis_oom(trial: Trial, refused_for: float = 8.0) -> None:
    """Out of memory: `maxmemory` 1 byte with `noeviction` on every primary (writes get OOM,
    reads are served), then the previous limit again."""
    primaries = trial.deployment.primaries()
    targets = ", ".join(server_name(server) for server in primaries)
    settings = {"maxmemory": "1", "maxmemory-policy": "noeviction"}
    async with (
        trial.recorder.fault("redis-oom", targets, redis_serves_reads=True),
        configured(primaries, settings),
    ):
        await trial.run_for(refused_for)


async def redis_noreplicas(trial: Trial, refused_for: float = 4.0) -> None:
    """`min-replicas-to-write` above the replicas connected: writes get NOREPLICAS, reads are
    served."""
    primaries = trial.deployment.primaries()
    targets = ", ".join(server_name(server) for server in primaries)
    wanted = 1 + max(connected_replicas(server) for server in primaries)
    async with (
        trial.recorder.fault("redis-noreplicas", targets, redis_serves_reads=True),
        configured(primaries, {"min-replicas-to-write": str(wanted)}),
    ):
        await trial.run_for(refused_for)


def connected_replicas(server: RedisServer) -> int:
    client = server.client()
    try:
        return int(client.info("replication").get("connected_slaves", 0))
    finally:
        client.close()


@contextlib.asynccontextmanager
async def configured(servers: list[RedisServer], settings: dict[str, str]) -> AsyncIterator[None]:
    """`CONFIG SET` on every server for the block, the previous values restored after."""
    before = [await asyncio.to_thread(config_set, server, settings) for server in servers]
    try:
        yield
    finally:
        for server, previous in zip(servers, before, strict=True):
            await asyncio.to_thread(config_set, server, previous)


def config_set(server: RedisServer, settings: dict[str, str]) -> dict[str, str]:
    """Set `settings`; return the values they replaced."""
    client = server.client()
    try:
        previous = {name: str(client.config_get(name)[name]) for name in settings}
        for name, value in settings.items():
            client.config_set(name, value)
        return previous
    finally:
        client.close()


# --- the replicas ------------------------------------------------------------------------------


async def restart_replica(trial: Trial, name: str, why: str) -> bool:
    """Start a replica again; an incident if it does not get ready."""
    if await trial.fleet.restart(name):
        return True
    last = trial.fleet.replicas[name].log_tail(1)
    trial.recorder.incident(name, f"did not start again {why}: {last}")
    return False


def sigkill_replica(trial: Trial, name: str) -> None:
    """SIGKILL fleet replica `name`, and note the moment in the fault under way (the checker
    tells what died with its memory tier from that moment)."""
    trial.fleet.kill(name)
    trial.recorder.replica_killed()


async def replica_kill(trial: Trial, name: str, down_for: float = 1.0) -> None:
    """SIGKILL one exporter; it starts again on the same journal directory."""
    async with trial.recorder.fault("replica-kill", name, affects_redis=False):
        sigkill_replica(trial, name)
        await trial.run_for(down_for)
        await restart_replica(trial, name, "after SIGKILL")


async def replica_kill_mid_outage(trial: Trial, name: str) -> None:
    """Redis down; the replica, holding journalled writes, SIGKILLed and started again; then
    Redis back: the journal left by the dead process must be replayed."""
    server = trial.deployment.primaries()[0]
    async with trial.recorder.fault("replica-kill-mid-outage", f"{name} + {server_name(server)}"):
        server.kill()
        await trial.run_for(1.0)
        sigkill_replica(trial, name)
        await trial.run_for(0.3)
        await restart_replica(trial, name, "after SIGKILL during the outage")
        await trial.run_for(0.5)
        await asyncio.to_thread(server.start)
    await heal(trial)


async def journal_full_then_kill(trial: Trial, name: str) -> None:
    """The issue's scenario: Redis down, replica `name` journalling; its journal disk fills up;
    it is SIGKILLed and started again on the full disk; Redis comes back; the disk is freed."""
    if name not in trial.fleet.disks:
        require_mount()  # fails under CI, skips locally
    disk = trial.fleet.disks[name]
    server = trial.deployment.primaries()[0]
    async with trial.recorder.fault("journal-full-kill", f"{name} + {server_name(server)}"):
        server.kill()
        await trial.run_for(1.0)
        disk.fill()
        await trial.run_for(1.0)
        sigkill_replica(trial, name)
        started = await restart_replica(trial, name, "on a full journal disk")
        await asyncio.to_thread(server.start)
        await trial.run_for(2.0)
        disk.free()
        if not started:
            await restart_replica(trial, name, "once the disk had room again")
    await heal(trial)


# --- clocks ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def clock_stepped(trial: Trial, name: str, seconds: float) -> AsyncIterator[None]:
    """Replica `name`'s wall clock `seconds` off (negative: behind) for the block."""
    clock = trial.fleet.clocks[name]
    kind = f"clock-step {seconds / 3600:+g} h"
    async with trial.recorder.fault(kind, name, affects_redis=False):
        clock.step(seconds)
        try:
            await confirm_clock(trial, name, seconds)
            yield
        finally:
            clock.step(0)
            await confirm_clock(trial, name, 0)


async def clock_step(trial: Trial, name: str, seconds: float, held_for: float = 5.0) -> None:
    async with clock_stepped(trial, name, seconds):
        await trial.run_for(held_for)


async def confirm_clock(trial: Trial, name: str, seconds: float, within: float = 5.0) -> None:
    """Wait until the replica's HTTP `Date` header (its `time.time()`) shows the offset."""
    url = trial.fleet.replicas[name].base_url + "/-/healthy"
    deadline = time.monotonic() + within
    offset = None
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with trial.http.get(url) as response:
                offset = wall_offset(response.headers["Date"])
                if abs(offset - seconds) < 30:
                    return
        await asyncio.sleep(0.1)
    raise NemesisFailed(f"nemesis: {name}'s wall clock is {offset} s off, not {seconds}")


FaultFunction = Callable[..., Awaitable[None]]
FAULTS: dict[str, FaultFunction] = {
    "redis-kill": redis_kill,
    "redis-restart": redis_restart,
    "redis-restart-empty": redis_restart_empty,
    "redis-pause": redis_pause,
    "sentinel-failover": sentinel_failover,
    "master-kill": master_kill,
    "cluster-failover": cluster_failover,
    "redis-oom": redis_oom,
    "redis-noreplicas": redis_noreplicas,
    "replica-kill": replica_kill,
    "replica-kill-mid-outage": replica_kill_mid_outage,
    "journal-full-kill": journal_full_then_kill,
    "clock-step": clock_step,
}


def describe(kind: str, params: dict[str, Any]) -> str:
    args = ", ".join(f"{name}={value!r}" for name, value in params.items())
    return f"{kind}({args})"
