"""The exporter behind Redis Sentinel on loopback (`redis+sentinel://host:port/<master>`): the
sessions API and coherence on the master the sentinel names, and the master restarted under write
load without losing an acknowledged write."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.redis_topologies import RedisSentinel, require_redis_tools
from tests.support.replicas import (
    HttpWriter,
    Replica,
    assert_latest_in_redis,
    replica,
    until_changes,
    write_through_an_outage,
)
from tests.support.sessions import wait_for


@pytest.fixture(scope="module")
def sentinel() -> Iterator[RedisSentinel]:
    require_redis_tools()
    topology = RedisSentinel()
    # Acknowledged writes must survive the master's restart.
    topology.master.extra_args += ("--appendonly", "yes", "--appendfsync", "always")
    topology.start()
    yield topology
    topology.stop()


@pytest.fixture
def sentinel_url(sentinel: RedisSentinel) -> Iterator[str]:
    sentinel.master.ensure_running()
    client = sentinel.master.client()
    client.flushall()
    client.close()
    yield sentinel.url


@pytest.fixture
async def pair(sentinel_url: str) -> AsyncIterator[tuple[Replica, Replica]]:
    async with replica("A", sentinel_url) as a, replica("B", sentinel_url) as b:
        yield a, b


async def test_sessions_api_and_coherence_on_the_named_master(
    sentinel: RedisSentinel, pair: tuple[Replica, Replica]
) -> None:
    a, b = pair
    for side in (a, b):
        coherence = side.layer.coherence
        assert coherence is not None and coherence.active
        assert [c.node.name for c in coherence.channels] == [f"127.0.0.1:{sentinel.master.port}"]
    sid = await a.create({"v": 1})
    assert await b.read(sid) == (200, {"v": 1})
    await a.update(sid, {"v": 2})
    await until_changes(b, sid, {"v": 2})
    await b.delete(sid)
    await until_changes(a, sid, None)
    client = sentinel.master.client()
    try:
        assert client.exists("sme:session-index:{sessions-0}") == 0  # emptied with the delete
        others = [await a.create({"n": n}) for n in range(3)]
        assert client.zcard("sme:session-index:{sessions-0}") == len(others)
    finally:
        client.close()
    for side in (a, b):
        await side.until_sample("sessions_active", 3, 3.0)


async def test_master_restart_under_load_loses_no_acknowledged_write(
    sentinel: RedisSentinel, pair: tuple[Replica, Replica]
) -> None:
    a, b = pair
    writer = HttpWriter(a)
    master = sentinel.master
    await write_through_an_outage(writer, a, master.kill, master.start)

    assert writer.errors == []
    assert a.sample("store_failovers_total") == 1
    assert a.sample("store_replayed_total") >= 1
    assert a.sample("store_replay_pending") == 0
    types = a.event_types()
    assert types.index("tracking_lost") < types.index("tracking_restored")
    assert types.index("failover") < types.index("failback")
    client = master.client()
    try:
        assert_latest_in_redis(client.get, writer.latest)
    finally:
        client.close()
    # B saw the outage too (its tracking connection broke): it serves them once it failed back.
    await wait_for(lambda: b.sample("store_fallback_active") == 0, 15.0)
    for sid, data in list(writer.latest.items())[-20:]:
        assert await b.read(sid) == (200, data)
