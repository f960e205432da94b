"""Two exporter replicas (two apps, each with its own Redis clients and memory tier) on one real
Redis: what one writes the other reads, changes and deletes reach the other's memory tier within
the invalidation delay and never go back, expiry and FLUSHALL are seen by both, a killed
invalidation listener bypasses the memory tier until tracking comes back by itself, and the
session counts agree across replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.redis_server import RedisServer
from tests.support.replicas import Replica, replica, until_changes
from tests.support.sessions import wait_for


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[Replica, Replica]]:
    async with replica("A", redis_url) as a, replica("B", redis_url) as b:
        yield a, b


async def test_what_a_writes_b_reads_and_never_serves_stale(pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    for side in (a, b):
        assert side.sample("coherence_tracking_active") == 1
    sid = await a.create({"user": "ada", "v": 1})
    assert await b.read(sid) == (200, {"user": "ada", "v": 1})
    assert await b.read(sid) == (200, {"user": "ada", "v": 1})
    assert b.sample("cache_requests_total", manager="session", tier="memory", result="hit") == 1

    windows = []
    for version in range(2, 12):  # B holds the session in memory before each update on A
        await a.update(sid, {"user": "ada", "v": version})
        windows.append(await until_changes(b, sid, {"user": "ada", "v": version}))
    assert max(windows) < 1.0
    assert b.sample("cache_invalidations_total", reason="remote") >= 10
    # A's own writes echo back: not remote invalidations, and A keeps serving from memory.
    assert a.sample("cache_invalidations_total", reason="remote") == 0
    assert await a.read(sid) == (200, {"user": "ada", "v": 11})

    await a.delete(sid)
    await until_changes(b, sid, None)
    assert (await b.http.put(f"/api/sessions/{sid}", json={"data": {}})).status == 404


async def test_b_updates_what_a_holds_and_both_converge(pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    sids = [await a.create({"n": n}) for n in range(5)]
    for sid in sids:
        assert (await a.read(sid))[0] == 200 and (await b.read(sid))[0] == 200
    for n, sid in enumerate(sids):
        await b.update(sid, {"n": n, "by": "b"})
    for n, sid in enumerate(sids):
        await until_changes(a, sid, {"n": n, "by": "b"})
    assert a.sample("memory_tier_entries") >= 1  # served from memory again once re-read


async def test_expiry_is_seen_by_both_and_counted_once(pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    sid = await a.create({"short": True}, ttl=0.5)
    assert (await b.read(sid))[0] == 200  # B's memory holds it too
    await asyncio.sleep(0.7)
    assert (await a.read(sid))[0] == 404
    assert (await b.read(sid))[0] == 404
    assert a.sample("sessions_expired_total") + b.sample("sessions_expired_total") == 1
    await asyncio.sleep(1.2)  # a sweep on each replica: nothing left to count twice
    assert a.sample("sessions_expired_total") + b.sample("sessions_expired_total") == 1


async def test_flushall_empties_both_memory_tiers(
    redis_server: RedisServer, pair: tuple[Replica, Replica]
) -> None:
    a, b = pair
    sids = [await side.create({"n": n}) for side in (a, b) for n in range(4)]
    for sid in sids:
        for side in (a, b):
            assert (await side.read(sid))[0] == 200
    for side in (a, b):
        assert side.sample("memory_tier_entries") == 8
    client = redis_server.client()
    client.flushall()
    client.close()
    for side in (a, b):
        await side.until_sample("memory_tier_entries", 0, 1.0)
        assert side.sample("cache_invalidations_total", reason="flush") == 8
    # The flush took the fleet's epoch and records too: misses are doubted (503) until both
    # replicas have followed it, within about a heartbeat; never a 200. Nothing is re-seeded:
    # an operator's FLUSHALL is respected.
    deadline = asyncio.get_running_loop().time() + 2.0
    while True:
        statuses = {(await side.read(sid))[0] for side in (a, b) for sid in sids}
        assert statuses <= {404, 503}
        if statuses == {404} or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert statuses == {404}
    for side in (a, b):
        assert side.sample("store_reseeded_total") == 0


async def test_killed_listener_bypasses_memory_until_tracking_is_back(
    redis_server: RedisServer, redis_url: str
) -> None:
    # B retries slowly so that the test can look around while its tracking is down.
    async with replica("A", redis_url) as a, replica("B", redis_url, redis_retry_interval=1.5) as b:
        sid = await a.create({"v": 0})
        assert await b.read(sid) == (200, {"v": 0})
        assert b.sample("memory_tier_entries") == 1
        coherence = b.layer.coherence
        assert coherence is not None and len(coherence.listener_ids) == 1
        client = redis_server.client()
        client.client_kill_filter(_id=str(coherence.listener_ids[0]))
        client.close()

        await wait_for(lambda: "tracking_lost" in b.event_types(), 1.0)
        assert b.sample("coherence_tracking_active") == 0
        assert b.sample("memory_tier_entries") == 0
        assert b.sample("cache_invalidations_total", reason="tracking_lost") == 1
        assert b.sample("store_fallback_active") == 0  # Redis itself is fine
        shown = await (await b.http.get("/api/session-metrics/persistence")).json()
        assert shown["coherence"]["tracking_active"] is False
        assert shown["coherence"]["memory_bypassed"] is True and shown["coherence"]["losses"] == 1

        redis_hits = {"manager": "session", "tier": "redis", "result": "hit"}
        redis_reads = b.sample("cache_requests_total", **redis_hits)
        for version in range(1, 6):  # no invalidation reaches B now: every read must go to Redis
            await a.update(sid, {"v": version})
            assert await b.read(sid) == (200, {"v": version})
        assert b.sample("coherence_tracking_active") == 0, "tracking came back too early to tell"
        assert b.sample("memory_tier_entries") == 0
        after = b.sample("cache_requests_total", **redis_hits)
        assert after == redis_reads + 5

        await wait_for(lambda: b.sample("coherence_tracking_active") == 1, 5.0)
        assert "tracking_restored" in b.event_types()
        assert coherence.losses == 1 and len(coherence.listener_ids) == 1
        assert await b.read(sid) == (200, {"v": 5})
        assert await b.read(sid) == (200, {"v": 5})
        assert b.sample("memory_tier_entries") == 1  # the memory tier serves again
        await a.update(sid, {"v": 6})
        await until_changes(b, sid, {"v": 6})


async def test_active_and_expired_counts_agree_across_replicas(
    pair: tuple[Replica, Replica],
) -> None:
    a, b = pair
    short = [await a.create({"s": n}, ttl=2.5) for n in range(6)]
    short += [await b.create({"s": n}, ttl=2.5) for n in range(4)]
    # The last short session expires 2.5 s from here (each create is an HTTP round trip: on a
    # busy machine the ten of them take a while, so time from the first would be too early).
    created = asyncio.get_running_loop().time()
    long = [await a.create({"l": n}, ttl=60) for n in range(3)]
    long += [await b.create({"l": n}, ttl=60) for n in range(2)]
    for sid in short + long:  # both memory tiers hold copies of everything
        assert (await a.read(sid))[0] == 200 and (await b.read(sid))[0] == 200
    await a.delete(short[7])  # deleted before it expired: not an expiry
    await b.delete(long[0])
    await a.update(long[4], {"l": "updated"})
    live, expiring = len(long) - 1, len(short) - 1

    for side in (a, b):  # each replica's own changes at once, the other's after a refresh
        await side.until_sample("sessions_active", live + expiring, 1.5)
    await asyncio.sleep(max(0.0, 2.6 - (asyncio.get_running_loop().time() - created)))
    for sid in short[:3]:  # some expiries are noticed by reads, the rest by the sweeps
        assert (await b.read(sid))[0] == 404
    for sid in short[3:5]:
        assert (await a.read(sid))[0] == 404

    def expired() -> float:
        return a.sample("sessions_expired_total") + b.sample("sessions_expired_total")

    await wait_for(lambda: expired() == expiring, 3.0)
    for side in (a, b):
        await side.until_sample("sessions_active", live, 3.0)
    await asyncio.sleep(1.2)  # more sweeps and refreshes on both: nothing counted twice
    assert expired() == expiring
    assert a.sample("sessions_active") == b.sample("sessions_active") == live
    expire_ops = sum(
        side.sample("operation_duration_seconds_count", manager="session", operation="expire")
        for side in (a, b)
    )
    assert expire_ops == expiring
