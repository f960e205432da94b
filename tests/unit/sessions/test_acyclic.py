"""Held sessions are invisible to the cycle collector (its full collections stop the event loop in
proportion to what it walks), yet freed the moment they are dropped, and cycles beside them are
still collected."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Iterator

import orjson
import pytest
from prometheus_client import CollectorRegistry

from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.core.settings import parse_settings
from exporter.sessions.factory import open_session_layer
from exporter.store.contract import StoredValue
from exporter.store.memory_store import MemoryStore

BODY = orjson.dumps({"user": "ada", "roles": ["designer"], "blob": "x" * 1000})


class Decoded:
    """A decoded value that can be watched: a weak reference dies when it is freed."""


@pytest.fixture
def no_automatic_collection() -> Iterator[None]:
    """Only reference counting may free anything during the test."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def held(decoded: object, ttl: float = 60.0) -> StoredValue:
    return StoredValue(b"payload", 1, time.time() + ttl, decoded)


async def test_held_sessions_add_nothing_for_a_full_collection_to_walk() -> None:
    metrics = Metrics(CollectorRegistry())
    settings = parse_settings({"memory_max_entries": 10_000})
    async with open_session_layer(settings, metrics, EventLog(100, metrics)) as layer:
        manager = layer.manager
        for _ in range(100):  # first-use allocations are not per-session
            (await manager.create(orjson.loads(BODY))).json_bytes()
        gc.collect()
        before = len(gc.get_objects())
        ids = [(await manager.create(orjson.loads(BODY))).id for _ in range(3_000)]
        for session_id in ids:
            (await manager.get(session_id)).json_bytes()
        gc.collect()
        grown = len(gc.get_objects()) - before
        assert len(layer.store.memory) == 3_100
        assert (await manager.get(ids[0])).data["user"] == "ada"
    assert grown < 50  # three tracked objects per session before: 9,000


@pytest.mark.usefixtures("no_automatic_collection")
def test_an_evicted_or_expired_entry_is_freed_at_once() -> None:
    tier = MemoryStore(1, 1 << 20)
    evicted, expired = Decoded(), Decoded()
    watched = [weakref.ref(evicted), weakref.ref(expired)]
    tier.put("a", held(evicted))
    tier.put("b", held(expired, ttl=0.01))  # evicts "a"
    del evicted, expired
    assert watched[0]() is None
    time.sleep(0.02)
    assert tier.get("b") is None  # expired when read
    assert watched[1]() is None


def test_a_cycle_inside_a_held_value_is_still_collected_once_dropped() -> None:
    tier = MemoryStore(10, 1 << 20)
    cycle = Decoded()
    cycle.self = cycle  # type: ignore[attr-defined]
    watched = weakref.ref(cycle)
    tier.put("a", held(cycle))
    del cycle
    gc.collect()
    assert watched() is not None  # held: reachable, not collected
    tier.pop("a")
    gc.collect()
    assert watched() is None
