"""Pinned memory-tier entries are never evicted: a put that cannot fit is refused (507)."""

from __future__ import annotations

import time

import pytest

from exporter.core.errors import StoreFull
from exporter.store.contract import StoredValue
from exporter.store.memory_store import MemoryStore


def value(payload: bytes = b"x", ttl: float = 60.0) -> StoredValue:
    return StoredValue(payload, 1, time.time() + ttl)


def test_sessions_pinned_by_prefix_are_refused_rather_than_evicted() -> None:
    tier = MemoryStore(2, 10_000, pinned_prefixes=("s:",))
    tier.put("s:a", value())
    tier.put("s:b", value())
    with pytest.raises(StoreFull, match="may not evict"):
        tier.put("s:c", value())
    assert tier.keys() == ["s:a", "s:b"] and tier.evictions == 0 and tier.rejected == 1
    tier.put("s:a", value(b"replaced"))  # replacing a held session needs no room
    assert tier.get("s:a").payload == b"replaced"  # type: ignore[union-attr]


def test_cache_entries_are_evicted_to_make_room_for_sessions() -> None:
    evicted: list[int] = []
    tier = MemoryStore(3, 10_000, pinned_prefixes=("s:",), on_evict=evicted.append)
    tier.put("figma:1", value())
    tier.put("s:a", value())
    tier.put("figma:2", value())
    tier.put("s:b", value())
    tier.put("s:c", value())
    assert sorted(tier.keys()) == ["s:a", "s:b", "s:c"] and sum(evicted) == 2
    tier.put("figma:3", value())  # a cache entry into a tier full of sessions: itself evicted
    assert sorted(tier.keys()) == ["s:a", "s:b", "s:c"]


def test_the_byte_bound_refuses_a_growing_session_and_keeps_the_old_one() -> None:
    tier = MemoryStore(100, 100, pinned_prefixes=("s:",))
    tier.put("s:a", value(b"x" * 40))
    tier.put("s:b", value(b"x" * 40))
    with pytest.raises(StoreFull):
        tier.put("s:a", value(b"x" * 70))  # an update that grows it past the bound
    assert tier.get("s:a").payload == b"x" * 40  # type: ignore[union-attr]
    assert tier.bytes == tier.pinned_bytes == 86
    with pytest.raises(StoreFull):
        tier.put("s:huge", value(b"x" * 200))  # larger than the whole tier: not dropped silently


def test_pin_and_unpin_one_key() -> None:
    tier = MemoryStore(2, 10_000)
    tier.put("a", value())
    tier.pin("a")
    tier.put("b", value())
    tier.put("c", value())  # evicts "b", the oldest unpinned entry
    assert sorted(tier.keys()) == ["a", "c"]
    assert tier.pinned_entries == 1
    tier.unpin("a")
    tier.put("d", value())
    tier.put("e", value())  # "a" is evictable again (its LRU place was lost while pinned)
    assert sorted(tier.keys()) == ["d", "e"] and tier.pinned_entries == 0


def test_pinning_a_key_before_it_is_held_applies_when_it_is_put() -> None:
    tier = MemoryStore(1, 10_000)
    tier.pin("j")
    tier.put("j", value())
    tier.pin("j2")
    with pytest.raises(StoreFull):
        tier.put("j2", value())
    assert tier.keys() == ["j"]


def test_pinned_entries_still_expire_and_release_their_room() -> None:
    tier = MemoryStore(1, 10_000, pinned_prefixes=("s:",))
    tier.put("s:a", value(ttl=0.001))
    deadline = time.monotonic() + 5
    while tier.sweep() == 0:
        assert time.monotonic() < deadline
    tier.put("s:b", value())
    assert tier.keys() == ["s:b"] and tier.pinned_entries == 1


def test_clear_can_spare_pinned_entries() -> None:
    tier = MemoryStore(10, 10_000, pinned_prefixes=("s:",))
    for key in ("s:a", "figma:1", "figma:2", "j"):
        tier.put(key, value())
    tier.pin("j")
    assert tier.clear(keep_pinned=True) == 2
    assert sorted(tier.keys()) == ["j", "s:a"] and tier.pinned_entries == 2
    assert tier.clear() == 2 and tier.pinned_entries == tier.pinned_bytes == 0


def test_cache_entries_cycle_through_a_tier_full_of_pinned_ones() -> None:
    tier = MemoryStore(1001, 1 << 30, pinned_prefixes=("s:",))
    for n in range(1000):
        tier.put(f"s:{n}", value())
    for n in range(50):  # each put of a cache entry evicts the previous one
        tier.put(f"figma:{n}", value())
    assert len(tier) == 1001 and tier.get("figma:49") is not None
    assert tier.pinned_entries == 1000 and tier.evictions == 49
