"""Notice a Redis Cluster change its primaries, and tell the store (`TieredStore.master_switched`).

A Cluster master's replication is asynchronous: when a replica takes over (the master killed,
paused past `cluster-node-timeout`, or a `CLUSTER FAILOVER`), the writes the old master had not
sent it yet are gone. And a paused master, woken after its replica took over, still takes writes
for its slots until gossip demotes it; its resync then drops them. Its clients got errors during
the pause, but ours got 2xx: the journal hid the pause, and its replay may walk into that window.

So, as for Sentinel's `+switch-master`, the store treats a change of primaries as a master switch:
writes are journalled until the client routes to the new owners (`cluster_routes`), and
every write acknowledged in the last `RESEND_WINDOW` seconds is sent again, version-checked. The
Cluster has no announcement to subscribe to, so this watcher reads every node's `CLUSTER NODES`
each `interval` seconds (`cluster_view`: the newest config epoch wins), and again whenever
recovery is about to replay: a replica failing back after its master died re-sends what the old
master lost before it serves reads from the new one, not up to an interval later.

    watch = ClusterWatch(deployment, on_switch)
    await watch.start()
    ...
    await watch.close()
"""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio.cluster import RedisCluster

from exporter.core.errors import StoreUnavailable
from exporter.core.tasks import cancel_and_wait, raise_if_cancelled
from exporter.store.cluster_routes import cluster_slot_owners, stale_routes
from exporter.store.redis_client import REDIS_FAILURES, RedisDeployment
from exporter.store.redis_store import _unavailable
from exporter.store.sentinel_watch import Switched

# How often every node is asked. A lost write is re-sent if the change is noticed within the
# re-send window (30 s); sooner also ends sooner the time the old master may take writes that
# this replica acknowledges. One CLUSTER NODES per node per second is cheap.
POLL_INTERVAL = 1.0


class ClusterWatch:
    def __init__(
        self,
        deployment: RedisDeployment,
        on_switch: Switched,
        *,
        interval: float = POLL_INTERVAL,
        timeout: float = 1.0,
    ) -> None:
        assert isinstance(deployment.client, RedisCluster)
        self.client = deployment.client
        self.on_switch = on_switch
        self.interval = interval
        self.timeout = timeout
        self.owners: list[str] | None = None  # the primaries last seen
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._look()
        self._task = asyncio.create_task(self._poll(), name="cluster-watch")

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _poll(self) -> None:
        while True:
            raise_if_cancelled()
            await asyncio.sleep(self.interval)
            await self._look()

    async def before_replay(self) -> None:
        """Recovery's step before it replays (`Recovery.before_replay`): look now, so that a
        replica failing back re-sends what the old master lost before it serves reads from the
        new one; then, from the same answers, StoreUnavailable while the client still routes to
        a master a newer claim replaced (`cluster_routes.stale_routes`)."""
        owners = await self._look()
        try:
            stale = await stale_routes(self.client, owners)
        except REDIS_FAILURES as exc:
            raise _unavailable(exc) from None
        if stale is not None:
            raise StoreUnavailable(stale)

    async def _look(self) -> list[str]:
        """Ask every node now; a change of primaries is a switch. The owners seen; none if no
        node answered in time (a failed look is not a change)."""
        owners: list[str] = []
        with contextlib.suppress(*REDIS_FAILURES):
            async with asyncio.timeout(self.timeout):
                owners = await cluster_slot_owners(self.client)
            if owners:
                await self._seen(owners)
        return owners

    async def _seen(self, owners: list[str]) -> None:
        old, self.owners = self.owners, owners
        if old is None or old == owners:
            return
        gone = ", ".join(sorted(set(old) - set(owners))) or "none"
        new = ", ".join(sorted(set(owners) - set(old))) or "none"
        await self.on_switch(f"Cluster primaries {gone} -> {new}")  # it logs the switch
