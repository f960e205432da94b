"""Two replicas on one real Redis: each publishes its summary, `?scope=fleet` on either shows
both and the totals, a session's metrics count the reads made on either (batched: a handful of
Redis writes for hundreds of reads), a replica that stops leaves the view, and with Redis down
the view says it is degraded instead of failing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from exporter.web.keys import LIFECYCLE
from tests.support.redis_server import RedisServer
from tests.support.redis_topologies import RedisCluster, require_redis_tools
from tests.support.replicas import Replica, replica
from tests.support.session_metrics import running_app, wait_for

FAST = {"snapshot_interval": 0.2, "health_interval": 0.5, "probe_interval": 0.3}
FLEET = "/api/session-metrics/realtime?scope=fleet"


async def get_json(side: Replica, path: str, status: int = 200) -> Any:
    response = await side.http.get(path)
    assert response.status == status, (path, response.status, await response.text())
    return await response.json()


async def fleet_of(side: Replica) -> dict[str, Any]:
    body: dict[str, Any] = await get_json(side, FLEET)
    return body


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[Replica, Replica]]:
    async with replica("A", redis_url, **FAST) as a, replica("B", redis_url, **FAST) as b:
        yield a, b


async def until_fleet(side: Replica, predicate: Any, timeout: float = 20) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    async def holds() -> bool:
        seen[:] = [await fleet_of(side)]
        return bool(predicate(seen[0]))

    try:
        await wait_for(holds, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"{side.name}: last fleet view {seen}") from None
    return seen[0]


async def test_the_fleet_view_on_either_replica_shows_both_and_the_totals(
    pair: tuple[Replica, Replica],
) -> None:
    a, b = pair
    sid = await a.create({"n": 1})
    for _ in range(20):
        assert (await b.read(sid))[0] == 200

    for side in (a, b):
        view = await until_fleet(side, lambda v: len(v["replicas"]) == 2)
        assert view["scope"] == "fleet" and view["status"] == "ok"
        assert [r["this_replica"] for r in view["replicas"]] == [True, False]
        assert view["totals"]["replicas"] == 2
        assert view["totals"]["redis_connected"] == 2
        assert view["totals"]["worst_status"] == "healthy"
    # The same document on every report that takes ?scope=fleet; others refuse a bad scope.
    for path in ("performance", "cache-stats"):
        other = await get_json(a, f"/api/session-metrics/{path}?scope=fleet")
        assert other["scope"] == "fleet" and len(other["replicas"]) == 2
    bad = await get_json(a, "/api/session-metrics/realtime?scope=everything", status=400)
    assert bad["error"]["code"] == "invalid_query"
    # The stream carries it too.
    async with a.http.get("/api/session-metrics/stream") as stream:
        text = b""
        while b"event: fleet" not in text:
            text += await stream.content.readany()


async def test_a_sessions_metrics_count_the_reads_made_on_either_replica(
    pair: tuple[Replica, Replica], redis_server: RedisServer
) -> None:
    a, b = pair
    sid = await a.create({"n": 1})
    redis = redis_server.client()
    redis.config_resetstat()
    for _ in range(150):
        assert (await a.read(sid))[0] == 200
    for _ in range(100):
        assert (await b.read(sid))[0] == 200
    path = f"/api/sessions/{sid}/metrics"

    async def counted(side: Replica) -> bool:
        body = await get_json(side, f"{path}?scope=fleet")
        return bool(body["scope"] == "fleet" and body["access"]["reads"] == 250)

    for side in (a, b):
        await wait_for(lambda side=side: counted(side), timeout=20)  # type: ignore[misc]
    mine = await get_json(a, path)
    assert mine["scope"] == "replica" and mine["access"]["reads"] == 150
    fleet = await get_json(b, f"{path}?scope=fleet")
    assert fleet["access"]["writes"] == 1
    assert fleet["access"]["cache"]["memory_hits"] + fleet["access"]["cache"]["memory_misses"]
    # Batched: one HINCRBY per session, counter and flush, not one per read.
    increments = redis.info("commandstats").get("cmdstat_hincrby", {}).get("calls", 0)
    assert 0 < increments < 25, increments
    # Kept for the session's lifetime (120 s here), not for ever.
    runtime = a.app[LIFECYCLE].runtime
    assert runtime is not None and runtime.fleet is not None
    assert 0 < redis.ttl(runtime.fleet.counters.key(sid)) <= 120
    await a.delete(sid)
    gone = await a.http.get(f"{path}?scope=fleet")
    assert gone.status == 404


async def test_a_replica_that_stops_leaves_the_view_and_a_dead_ones_entry_expires(
    redis_url: str, redis_server: RedisServer
) -> None:
    async with replica("A", redis_url, **FAST) as a:
        async with replica("B", redis_url, **FAST) as b:
            await until_fleet(a, lambda v: len(v["replicas"]) == 2)
            runtime_b = b.app[LIFECYCLE].runtime
            assert runtime_b is not None and runtime_b.fleet is not None
            entry = f"sme:{{fleet}}:replica:{runtime_b.fleet.replica}"
            # A replica that dies without stopping drops out when its entry expires.
            ttl_ms = redis_server.client().pttl(entry)
            assert 0 < ttl_ms <= 15_000
        view = await until_fleet(a, lambda v: len(v["replicas"]) == 1)
        assert view["replicas"][0]["this_replica"] is True


async def test_with_redis_down_the_fleet_view_says_degraded_and_recovers(
    pair: tuple[Replica, Replica], redis_server: RedisServer
) -> None:
    a, _ = pair
    await until_fleet(a, lambda v: len(v["replicas"]) == 2)
    redis_server.kill()
    try:
        view = await until_fleet(a, lambda v: v["status"] == "degraded")
        assert "Redis unreachable" in view["message"]
        assert any(r["this_replica"] for r in view["replicas"])  # its own numbers at least
        sid_metrics = await a.http.get("/api/sessions/unknown/metrics?scope=fleet")
        assert sid_metrics.status in (404, 503)  # never a 500
    finally:
        redis_server.ensure_running()
    await until_fleet(a, lambda v: v["status"] == "ok" and len(v["replicas"]) == 2)


async def test_without_redis_the_fleet_is_disabled_not_an_error() -> None:
    async with running_app() as app:
        view = await app.json(FLEET)
        assert view["status"] == "disabled" and view["replicas"] == []
        created = await app.json("/api/sessions", method="POST", status=201, json={"data": {}})
        refused = await app.json(f"/api/sessions/{created['id']}/metrics?scope=fleet", status=400)
        assert refused["error"]["code"] == "fleet_disabled"


async def test_on_redis_cluster_the_view_and_the_counts_work_alike() -> None:
    """The summaries share one slot (`{fleet}`), the counters' script calls one bucket each."""
    require_redis_tools()
    cluster = RedisCluster().start()
    try:
        async with (
            replica("A", cluster.url, **FAST) as a,
            replica("B", cluster.url, **FAST) as b,
        ):
            sids = [await a.create({"n": n}) for n in range(20)]  # several buckets
            for sid in sids:
                for side in (a, b):
                    assert (await side.read(sid))[0] == 200
            view = await until_fleet(a, lambda v: len(v["replicas"]) == 2)
            assert view["status"] == "ok"

            async def counted() -> bool:
                for sid in sids:
                    body = await get_json(b, f"/api/sessions/{sid}/metrics?scope=fleet")
                    if body["access"]["reads"] != 2:
                        return False
                return True

            await wait_for(counted, timeout=20)
    finally:
        cluster.stop()
