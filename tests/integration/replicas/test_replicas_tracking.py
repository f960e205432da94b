"""Default-mode tracking on a real Redis (tracking.py, coherence.py): a replica hears only of the
keys it holds; Redis's bounded tracking table evicts keys and says so; a data connection that
closes takes its registrations with it, and tracking counts as lost; an update made on the
connection that registered the key is not echoed, so it needs no confirming read."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from exporter.sessions.session import session_key
from tests.support.redis_server import RedisServer
from tests.support.sessions import Layer, open_layer, wait_for

KEYS = "coherence_invalidation_keys_total"


def keys(layer: Layer, result: str) -> float:
    return layer.sample(KEYS, {"result": result})


def tracking(layer: Layer) -> bool:
    coherence = layer.layer.coherence
    return coherence is not None and coherence.active


async def test_a_replica_holding_none_of_the_keys_hears_of_none_of_the_writes(
    redis_url: str,
) -> None:
    async with open_layer(redis_url) as a, open_layer(redis_url) as b:
        await wait_for(lambda: tracking(a) and tracking(b), 5.0)
        ids = [(await a.manager.create({"n": n})).id for n in range(30)]
        for sid in ids:
            await a.manager.update(sid, {"n": -1})
        await a.manager.delete(ids[-1])
        held = ids[0]
        assert (await b.manager.get(held)).data == {"n": -1}
        assert b.store.memory.peek(session_key(held)) is not None
        await a.manager.update(held, {"n": 7})
        # The listener delivers in order: once this change arrived, any earlier message had too.
        await wait_for(lambda: keys(b, "dropped") == 1, 5.0)
        assert keys(b, "absent") == 0 and keys(b, "checked") == 0
        assert (await b.manager.get(held)).data == {"n": 7}


@contextmanager
def tracking_table_max_keys(redis_server: RedisServer, limit: int) -> Iterator[None]:
    client = redis_server.client()
    before = client.config_get("tracking-table-max-keys")["tracking-table-max-keys"]
    client.config_set("tracking-table-max-keys", limit)
    try:
        yield
    finally:
        client.config_set("tracking-table-max-keys", before or 1_000_000)
        client.close()


async def test_a_nearly_full_tracking_table_stops_memory_serving_until_it_has_room(
    redis_server: RedisServer, redis_url: str
) -> None:
    """Redis evicts keys beyond `tracking-table-max-keys`, and does not tell a NOLOOP connection
    of the evictions its own commands trigger: near the bound, memory is not trusted."""
    async with open_layer(redis_url) as a, open_layer(redis_url) as b:
        await wait_for(lambda: tracking(a) and tracking(b), 5.0)
        ids = [(await a.manager.create({"v": 1})).id for _ in range(40)]
        with tracking_table_max_keys(redis_server, 30):
            for sid in ids:
                await b.manager.get(sid)
            await wait_for(lambda: not tracking(b), 5.0)
            assert b.store.reads.bypass
            for sid in ids:
                await a.manager.update(sid, {"v": 2})
            for sid in ids:
                assert (await b.manager.get(sid)).data == {"v": 2}
        await wait_for(lambda: tracking(b), 5.0)  # the table has room again
        for sid in ids[:5]:
            assert (await b.manager.get(sid)).data == {"v": 2}
            assert b.store.memory.peek(session_key(sid)) is not None
            await a.manager.update(sid, {"v": 3})
        await wait_for(lambda: all(b.store.memory.peek(session_key(i)) is None for i in ids), 5.0)
        for sid in ids[:5]:
            assert (await b.manager.get(sid)).data == {"v": 3}


async def test_a_killed_tracking_data_connection_counts_as_tracking_lost(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with open_layer(redis_url) as a, open_layer(redis_url) as b:
        await wait_for(lambda: tracking(a) and tracking(b), 5.0)
        sid = (await a.manager.create({"v": 1})).id
        assert (await b.manager.get(sid)).data == {"v": 1}
        coherence = b.layer.coherence
        assert coherence is not None
        assert b.store.memory.peek(session_key(sid)) is not None
        listener = coherence.listener_ids[0]
        client = redis_server.client()
        for entry in client.client_list():
            if "t" in entry["flags"] and int(entry["redir"]) == listener:
                client.client_kill_filter(_id=entry["id"])
        client.close()
        # Redis forgot, silently, what that connection registered: b stops serving from memory.
        await wait_for(lambda: coherence.losses >= 1, 5.0)
        await a.manager.update(sid, {"v": 2})
        assert (await b.manager.get(sid)).data == {"v": 2}
        await wait_for(lambda: coherence.active, 5.0)
        assert (await b.manager.get(sid)).data == {"v": 2}


def mgets(redis_server: RedisServer) -> int:
    """MGETs Redis served so far: a parked write's check is one (the replicas' own timers send
    none)."""
    client = redis_server.client()
    stats = client.info("commandstats")
    client.close()
    return int(stats.get("cmdstat_mget", {}).get("calls", 0))


async def test_updates_on_the_connection_that_registered_need_no_confirming_read(
    redis_server: RedisServer, redis_url: str
) -> None:
    """One pooled connection: every update goes out where the key is registered (NOLOOP), so
    none echoes, none is parked, none is read back; and another replica's change still lands."""
    async with open_layer(redis_url, redis_max_connections=1) as a, open_layer(redis_url) as b:
        await wait_for(lambda: tracking(a) and tracking(b), 5.0)
        sid = (await a.manager.create({"n": 0})).id
        before = mgets(redis_server)
        for n in range(1, 21):
            await a.manager.update(sid, {"n": n})
            assert (await a.manager.get(sid)).data == {"n": n}
        assert mgets(redis_server) == before
        assert keys(a, "checked") == 0
        hits = {"manager": "session", "tier": "memory", "result": "hit"}
        assert a.sample("cache_requests_total", hits) >= 20
        await b.manager.update(sid, {"n": "b"})
        seen: list[object] = []

        async def read() -> None:
            seen.append((await a.manager.get(sid)).data)

        while seen[-1:] != [{"n": "b"}]:  # within the stale-read window, a may still say 20
            await read()
            await asyncio.sleep(0.001)  # a memory hit never yields: let the listener run
            assert len(seen) < 5000, "a never saw b's change"
        assert set(map(str, seen)) <= {str({"n": 20}), str({"n": "b"})}
