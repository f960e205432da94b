"""The tiered store and SessionManager against a real Redis: read-through by tier, metrics after
known operations, expiry, memory-only mode, the generic key/value API used by other caches."""

from __future__ import annotations

import asyncio
import time

import pytest

from exporter.core.errors import SessionNotFound
from exporter.sessions.session import session_key
from tests.support.redis_server import RedisServer
from tests.support.sessions import Layer, open_layer, wait_for


def cache(layer: Layer, tier: str, result: str) -> float:
    return layer.sample(
        "cache_requests_total", {"manager": "session", "tier": tier, "result": result}
    )


def op_count(layer: Layer, operation: str) -> float:
    labels = {"manager": "session", "operation": operation}
    return layer.sample("operation_duration_seconds_count", labels)


async def test_metric_values_after_known_operations(redis_url: str) -> None:
    async with open_layer(redis_url) as layer:
        manager = layer.manager
        sessions = [await manager.create({"n": n}) for n in range(3)]
        await manager.get(sessions[0].id)  # memory hit
        await layer.store.clear_memory()
        await manager.get(sessions[1].id)  # memory miss, Redis hit
        await manager.get(sessions[1].id)  # memory hit again (filled by the read-through)
        with pytest.raises(SessionNotFound):
            await manager.get("never-created")  # memory miss, Redis miss
        await manager.update(sessions[2].id, {"n": 20})  # its lookup: memory miss, Redis hit
        await manager.delete(sessions[0].id)
        with pytest.raises(SessionNotFound):
            await manager.delete(sessions[0].id)

        assert layer.sample("sessions_created_total") == 3
        assert layer.sample("sessions_retrieved_total") == 3
        assert layer.sample("sessions_updated_total") == 1
        assert layer.sample("sessions_deleted_total") == 1
        assert op_count(layer, "create") == 3
        assert op_count(layer, "get") == 4
        assert op_count(layer, "delete") == 2
        errors = {"manager": "session", "operation": "get", "error": "not_found"}
        assert layer.sample("operation_errors_total", errors) == 1
        assert layer.sample("operation_errors_total", {**errors, "operation": "delete"}) == 1
        assert cache(layer, "memory", "hit") == 2
        assert cache(layer, "memory", "miss") == 3
        assert cache(layer, "redis", "hit") == 2
        assert cache(layer, "redis", "miss") == 1
        assert layer.sample("cache_invalidations_total", {"reason": "clear"}) == 3
        assert layer.sample("store_backend_up", {"backend": "redis"}) == 1
        assert layer.sample("store_fallback_active") == 0
        assert layer.sample("memory_tier_entries") == 2
        assert layer.sample("memory_tier_bytes") == layer.store.memory.bytes > 0
        assert layer.sample("memory_tier_max_entries") == 100_000
        assert layer.layer.instrumentation.counts["get"] == 4


async def test_get_held_answers_only_what_memory_holds_decoded(redis_url: str) -> None:
    """The HTTP route's synchronous fast path: a hit is counted as the get it is; otherwise it
    answers None and counts nothing, and the awaited `get` does the lookup (and counts it)."""
    async with open_layer(redis_url) as layer:
        manager = layer.manager
        session = await manager.create({"n": 1})
        store, key = layer.store, session_key(session.id)
        # Until the coherence echo of our create has come and been checked, a read may not fill
        # memory (on a loaded machine it can arrive during the read below).
        await wait_for(lambda: not store.guard.is_echo(key) and not store.is_parked(key), 5)
        await store.clear_memory()
        assert manager.get_held(session.id) is None
        assert manager.get_held("never-created") is None
        assert op_count(layer, "get") == cache(layer, "memory", "hit") == 0
        access = manager.access.view(session.id)
        assert access is not None and access["reads"] == 0
        assert (await manager.get(session.id)).data == {"n": 1}  # fills memory, decoded
        held = manager.get_held(session.id)
        assert held is not None and held.data == {"n": 1}
        assert op_count(layer, "get") == 2
        assert cache(layer, "memory", "hit") == 1
        assert layer.sample("sessions_retrieved_total") == 2
        access = manager.access.view(session.id)
        assert access is not None and access["cache"]["memory_hits"] == 1
        assert access["reads"] == 2


async def test_redis_holds_value_with_ttl_and_memory_never_outlives_it(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with open_layer(redis_url) as writer, open_layer(redis_url) as reader:
        session = await writer.manager.create({"short": True}, ttl=0.6)
        client = redis_server.client()
        key = "sme:" + session_key(session.id)
        assert 0 < client.pttl(key) <= 600
        assert (await reader.manager.get(session.id)).data == {"short": True}  # fills reader memory
        await asyncio.sleep(0.8)
        assert client.get(key) is None
        for layer in (writer, reader):
            with pytest.raises(SessionNotFound):
                await layer.manager.get(session.id)
        # Counted once across replicas (the shared session index), by whichever noticed first.
        expired = [layer.sample("sessions_expired_total") for layer in (writer, reader)]
        assert sorted(expired) == [0, 1]
        assert sorted(op_count(layer, "expire") for layer in (writer, reader)) == [0, 1]
        client.close()


async def test_expired_sessions_are_swept_from_memory_and_counted(redis_url: str) -> None:
    async with open_layer(redis_url) as layer:
        await layer.manager.create({"n": 2}, ttl=60)
        # Long enough that a busy machine still samples it live (0.2 s was not, under load).
        await layer.manager.create({"n": 1}, ttl=1.5)
        assert layer.sample("sessions_active") == 2
        await wait_for(lambda: layer.sample("sessions_expired_total") == 1, 6)
        assert layer.sample("sessions_active") == 1


async def test_memory_only_mode_serves_sessions_without_redis() -> None:
    async with open_layer(None) as layer:
        session = await layer.manager.create({"mode": "memory"}, ttl=60)
        assert (await layer.manager.get(session.id)).data == {"mode": "memory"}
        updated = await layer.manager.update(session.id, {"mode": "still memory"})
        assert updated.expires_at == session.expires_at
        status = layer.store.status()
        assert status.redis_configured is False and status.fallback_active is False
        assert layer.sample("store_backend_up", {"backend": "memory"}) == 1
        assert layer.sample("store_backend_up", {"backend": "redis"}) == 0
        assert layer.sample("sessions_active") == 1
        await layer.manager.delete(session.id)
        with pytest.raises(SessionNotFound):
            await layer.manager.get(session.id)
        assert layer.sample("sessions_active") == 0


async def test_memory_bounds_evict_and_evicted_sessions_come_back_from_redis(
    redis_url: str,
) -> None:
    async with open_layer(redis_url, memory_max_entries=3) as layer:
        sessions = [await layer.manager.create({"n": n}) for n in range(5)]
        assert layer.sample("cache_evictions_total", {"tier": "memory"}) == 2
        assert layer.sample("memory_tier_entries") == 3
        assert (await layer.manager.get(sessions[0].id)).data == {"n": 0}
        assert cache(layer, "redis", "hit") == 1


async def test_update_keeps_expiry_unless_ttl_given_and_delete_leaves_tombstone(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with open_layer(redis_url) as layer:
        session = await layer.manager.create({"v": 1}, ttl=100)
        same = await layer.manager.update(session.id, {"v": 2})
        assert same.expires_at == session.expires_at and same.version > session.version
        longer = await layer.manager.update(session.id, {"v": 3}, ttl=1000)
        assert longer.expires_at > session.expires_at + 800
        client = redis_server.client()
        key = "sme:" + session_key(session.id)
        assert client.pttl(key) > 900_000
        await layer.manager.delete(session.id)
        stored = client.get(key)
        # A tombstone: an older replayed write cannot revive it.
        assert isinstance(stored, bytes) and stored.endswith(b":d")
        assert client.pttl(key) > 0
        client.close()
        await layer.store.clear_memory()
        with pytest.raises(SessionNotFound):
            await layer.manager.get(session.id)
        with pytest.raises(SessionNotFound):
            await layer.manager.update(session.id, {"v": 4})


async def test_generic_key_value_api_with_its_own_namespace(redis_url: str) -> None:
    async with open_layer(redis_url) as layer:
        store = layer.store
        blob = bytes(range(256))
        value = await store.set("figma:file:abc", blob, ttl=30, decoded={"parsed": True})
        assert value.expires_at == pytest.approx(time.time() + 30, abs=2)
        hits: list[tuple[str, bool]] = []

        def record(tier: str, hit: bool) -> None:
            hits.append((tier, hit))

        held = await store.get("figma:file:abc", record)
        assert held is not None and held.decoded == {"parsed": True}
        assert hits == [("memory", True)]
        await layer.manager.create({"session": True})
        assert await store.clear_memory("figma:") == 1
        assert len(store.memory) == 1
        hits.clear()
        from_redis = await store.get("figma:file:abc", record)
        assert from_redis is not None and from_redis.payload == blob and from_redis.decoded is None
        assert hits == [("memory", False), ("redis", True)]
        assert await store.delete("figma:file:abc") is True
        assert await store.delete("figma:file:abc") is False
        assert await store.get("figma:file:abc") is None
        assert store.status().as_dict()["redis_connected"] is True


async def test_invalid_ids_are_not_found_without_touching_redis(redis_url: str) -> None:
    async with open_layer(redis_url) as layer:
        for bad in ("a}b", "x" * 200, ""):
            with pytest.raises(SessionNotFound):
                await layer.manager.get(bad)
        assert cache(layer, "redis", "miss") == 0
