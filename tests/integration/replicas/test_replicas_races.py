"""The races behind coherent memory tiers, at the store level on a real Redis: a read-through that
an invalidation overtakes does not fill memory; a replica's own writes survive their echo (still
memory hits, not counted as remote), a new session's with no read at all; another replica's write
landing right after ours wins."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis

from exporter.sessions.session import Session, session_key
from exporter.store.contract import StoredValue, encode_value
from tests.support.redis_server import RedisServer
from tests.support.sessions import open_layer, wait_for


async def test_read_through_overtaken_by_an_invalidation_does_not_fill_memory(
    redis_url: str,
) -> None:
    async with open_layer(redis_url) as layer:
        store = layer.store
        key = session_key((await layer.manager.create({"v": 1})).id)
        for invalidated in (False, True):
            await store.clear_memory()
            read = asyncio.create_task(store.get_uncached(key))
            await asyncio.sleep(0)  # the read is in flight
            if invalidated:
                store.invalidate(key)  # what the listener does when another replica writes
            assert (await read) is not None
            # Without the invalidation the read fills memory; with it, that copy may be stale.
            assert (store.memory.peek(key) is None) is invalidated


async def test_own_writes_survive_their_echo(redis_url: str) -> None:
    async with open_layer(redis_url) as layer:
        manager = layer.manager
        sessions = [await manager.create({"n": n}) for n in range(20)]
        for n, session in enumerate(sessions):
            await manager.update(session.id, {"n": n, "again": True})
            assert (await manager.get(session.id)).data == {"n": n, "again": True}
        await asyncio.sleep(0.2)  # every echo has arrived
        for session in sessions:
            await manager.get(session.id)
        hits = layer.sample(
            "cache_requests_total", {"manager": "session", "tier": "memory", "result": "hit"}
        )
        # Every get and every update's lookup was served by the memory tier, confirmed or not.
        assert hits == 20 + 20 + 20
        assert layer.sample("cache_invalidations_total", {"reason": "remote"}) == 0
        assert layer.sample("memory_tier_entries") == 20


async def test_a_new_sessions_echo_costs_no_read(redis_server: RedisServer, redis_url: str) -> None:
    # Nobody else can write a new random id before our answer, so its echo is not checked with
    # a GET: one Redis command per create. An update's echo still is (test above).
    client = redis_server.client()
    async with open_layer(redis_url) as layer:
        coherence = layer.layer.coherence
        assert coherence is not None
        await wait_for(lambda: coherence.active, 1.0)
        with _session_reads(client) as reads:
            sessions = [await layer.manager.create({"n": n}) for n in range(20)]
            await asyncio.sleep(0.2)  # every echo has arrived
            assert reads() == []
            assert not any(layer.store.is_parked(session_key(s.id)) for s in sessions)
            for n, session in enumerate(sessions):
                assert (await layer.manager.get(session.id)).data == {"n": n}
            hits = layer.sample(
                "cache_requests_total", {"manager": "session", "tier": "memory", "result": "hit"}
            )
            assert hits == 20
            assert reads() == []
        assert layer.sample("cache_invalidations_total", {"reason": "remote"}) == 0
    client.close()


@contextmanager
def _session_reads(client: redis.Redis) -> Iterator[Callable[[], list[str]]]:
    """The reads of session keys Redis executed meanwhile (its slow log, set to log every
    command; the fleet's own background reads of other keys are left out)."""
    threshold = client.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    assert threshold is not None
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("slowlog-max-len", 100_000)
    client.slowlog_reset()

    def reads() -> list[str]:
        commands = [entry["command"].split() for entry in client.slowlog_get(100_000)]
        return [
            " ".join(map(bytes.decode, command))
            for command in commands
            if command[0].upper() in (b"GET", b"MGET") and command[1].startswith(b"sme:s:")
        ]

    try:
        yield reads
    finally:
        client.config_set("slowlog-log-slower-than", threshold)


async def test_a_write_landing_right_after_ours_wins(
    redis_server: RedisServer, redis_url: str
) -> None:
    client = redis_server.client()
    async with open_layer(redis_url) as layer:
        manager = layer.manager
        for round_ in range(20):
            session = await manager.create({"round": round_, "by": "us"})
            # Another replica's write of the same key, as soon as ours is acknowledged: its
            # invalidation may arrive merged with our own echo.
            theirs = Session(session.id, {"round": round_, "by": "them"}, 0.0, session.expires_at)
            value = StoredValue(theirs.to_document(), time.time_ns(), session.expires_at)
            client.set("sme:" + session_key(session.id), encode_value(value))
            started = time.monotonic()
            while (await manager.get(session.id)).data["by"] != "them":
                assert time.monotonic() - started < 1.0, "our overwritten value is still served"
                await asyncio.sleep(0.001)
            for _ in range(10):  # and it stays
                assert (await manager.get(session.id)).data["by"] == "them"
        assert layer.sample("cache_invalidations_total", {"reason": "remote"}) >= 1
    client.close()


async def test_tracking_redirects_the_lane_to_the_listener(
    redis_server: RedisServer, redis_url: str
) -> None:
    """Default-mode tracking: per primary, one listener and one lane tracking in OPTIN + NOLOOP
    mode, redirected to it (no BCAST tracker)."""
    async with open_layer(redis_url) as layer:
        coherence = layer.layer.coherence
        assert coherence is not None
        await wait_for(lambda: coherence.active, 1.0)
        session = await layer.manager.create({"a": 1})
        await layer.store.get_uncached(session_key(session.id))
        client = redis_server.client()
        clients = client.client_list()
        client.close()
        listener = coherence.listener_ids[0]
        ours = [
            entry
            for entry in clients
            if int(entry["id"]) == listener or entry["redir"] == str(listener)
        ]
        names = sorted(entry["name"] for entry in ours)
        assert names == ["sme-invalidation-listener", "sme-tracking-lane"]
        lane = next(entry for entry in ours if entry["name"] == "sme-tracking-lane")
        assert "t" in lane["flags"]  # the only connection of ours that tracks
