"""Replay after a partition: one replica is cut off from Redis (a TCP proxy drops its connections)
while another keeps writing. The replay never overwrites or resurrects anything newer, replays
deletes (a full journal refuses writes: see test_store_durability)."""

from __future__ import annotations

import pytest

from exporter.core.errors import SessionNotFound
from tests.support.redis_server import RedisServer
from tests.support.sessions import open_layer, redis_proxy, wait_for


async def test_replay_keeps_newer_writes_of_another_replica(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with (
        redis_proxy(redis_server.port) as proxy,
        open_layer(proxy.url, redis_retry_interval=30) as cut,
        open_layer(redis_url) as other,
    ):
        x, y, z, w, v = [await cut.manager.create({"name": name}) for name in "xyzwv"]
        proxy.cut()
        await other.manager.update(w.id, {"by": "other", "at": "before"})
        await cut.manager.update(x.id, {"by": "cut"})  # finds Redis gone: fallback, journalled
        assert cut.sample("store_fallback_active") == 1
        await cut.manager.delete(y.id)
        await cut.manager.update(z.id, {"by": "cut"})
        await cut.manager.update(w.id, {"by": "cut", "at": "after"})
        await cut.manager.delete(v.id)
        # Later writes by a replica that still reaches Redis: newer than the journal's. "Later"
        # must hold on both replicas' clocks, each Redis's time known within half a round trip:
        # on a loaded machine other's may trail cut's by more than the moments between these
        # lines (the writes are concurrent: other never saw cut's journalled ones).
        cut_last = cut.store.clock.version()
        await wait_for(lambda: other.store.clock.now() * 1e9 > cut_last, 5.0)
        await other.manager.update(x.id, {"by": "other"})
        await other.manager.update(y.id, {"by": "other"})
        await other.manager.delete(z.id)

        proxy.restore()
        assert await cut.store.recover_now()

        assert cut.sample("store_fallback_active") == 0
        assert cut.sample("store_replayed_total") == 5
        done = [event for event in cut.events.recent(100) if event.type == "replay_done"][-1]
        # x (older than other's update) and z (deleted by other) are skipped; y's delete wins
        # over other's later update (a delete is final), w and v are written.
        assert done.details["skipped"] == 2 and done.details["replayed"] == 3

        await other.store.clear_memory()
        for reader in (cut, other):  # the cut replica's memory was flushed at failback
            assert (await reader.manager.get(x.id)).data == {"by": "other"}
            assert (await reader.manager.get(w.id)).data == {"by": "cut", "at": "after"}
            for gone in (y, z, v):
                with pytest.raises(SessionNotFound):
                    await reader.manager.get(gone.id)


async def test_reads_during_outage_serve_journalled_writes_even_after_eviction(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with (
        redis_proxy(redis_server.port) as proxy,
        open_layer(proxy.url, redis_retry_interval=30, memory_max_entries=2) as cut,
    ):
        await cut.manager.create({"warm": True})
        proxy.cut()
        sessions = [await cut.manager.create({"n": n}) for n in range(4)]
        assert len(cut.store.memory) == 2
        assert (await cut.manager.get(sessions[0].id)).data == {"n": 0}
        proxy.restore()
        assert await cut.store.recover_now()
