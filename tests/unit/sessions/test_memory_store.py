"""Memory tier: LRU order, per-entry expiry, entry and byte bounds, eviction counting, sweeping."""

from __future__ import annotations

import time

from exporter.store.contract import StoredValue
from exporter.store.memory_store import MemoryStore


def value(payload: bytes = b"x", ttl: float = 60.0, version: int = 1) -> StoredValue:
    return StoredValue(payload, version, time.time() + ttl)


def test_get_returns_what_was_put_and_misses_unknown_keys() -> None:
    tier = MemoryStore(10, 1024)
    tier.put("a", value(b"alpha"))
    assert tier.get("a").payload == b"alpha"  # type: ignore[union-attr]
    assert tier.get("b") is None


def test_entry_bound_evicts_least_recently_used_and_counts() -> None:
    evicted: list[int] = []
    tier = MemoryStore(2, 1024, on_evict=evicted.append)
    tier.put("a", value())
    tier.put("b", value())
    tier.get("a")  # "b" is now the least recently used
    tier.put("c", value())
    assert tier.keys() == ["a", "c"]
    assert tier.evictions == 1
    assert evicted == [1]


def test_byte_bound_evicts_until_within_limit() -> None:
    tier = MemoryStore(100, 30)
    tier.put("a", value(b"0123456789"))  # 11 bytes with the key
    tier.put("b", value(b"0123456789"))
    tier.put("c", value(b"0123456789"))  # 33 > 30: "a" goes
    assert tier.keys() == ["b", "c"]
    assert tier.bytes == 22
    assert tier.evictions == 1


def test_value_larger_than_the_whole_tier_is_not_held() -> None:
    tier = MemoryStore(100, 8)
    tier.put("a", value(b"far too large"))
    assert len(tier) == 0 and tier.bytes == 0


def test_replacing_a_key_keeps_byte_accounting_exact() -> None:
    tier = MemoryStore(10, 1024)
    tier.put("a", value(b"1234"))
    tier.put("a", value(b"12"))
    assert tier.bytes == 3
    assert tier.pop("a") is not None
    assert tier.bytes == 0 and len(tier) == 0


def test_expired_entry_is_a_miss_and_reported_once() -> None:
    expired: list[str] = []
    tier = MemoryStore(10, 1024, on_expire=lambda key, _: expired.append(key))
    tier.put("a", value(ttl=0.02))
    time.sleep(0.05)
    assert tier.get("a") is None
    assert tier.get("a") is None
    assert expired == ["a"]
    assert len(tier) == 0


def test_max_ttl_caps_the_memory_lifetime() -> None:
    tier = MemoryStore(10, 1024)
    tier.put("a", value(ttl=60), max_ttl=0.02)
    time.sleep(0.05)
    assert tier.get("a") is None


def test_already_expired_value_is_not_stored() -> None:
    tier = MemoryStore(10, 1024)
    tier.put("a", value(ttl=-1))
    assert len(tier) == 0


def test_sweep_removes_only_expired_entries() -> None:
    expired: list[str] = []
    tier = MemoryStore(10, 1024, on_expire=lambda key, _: expired.append(key))
    tier.put("short", value(ttl=0.02))
    tier.put("long", value(ttl=60))
    tier.put("short", value(ttl=0.02))  # a stale heap entry must not expire twice
    time.sleep(0.05)
    assert tier.sweep() == 1
    assert expired == ["short"]
    assert tier.keys() == ["long"]


def test_prefix_counts_and_prefix_clear() -> None:
    tier = MemoryStore(10, 1024, counted_prefixes=("s:",))
    tier.put("s:{1}", value())
    tier.put("s:{2}", value())
    tier.put("figma:x", value())
    assert tier.count("s:") == 2
    assert tier.clear("figma:") == 1
    assert tier.count("s:") == 2
    tier.pop("s:{1}")
    assert tier.count("s:") == 1
    assert tier.clear() == 1
    assert tier.count("s:") == 0 and tier.bytes == 0


def test_a_budgeted_prefix_evicts_its_own_oldest_entries_never_the_rest() -> None:
    evicted: list[int] = []
    tier = MemoryStore(100, 10_000, counted_prefixes=("s:",), on_evict=evicted.append)
    tier.set_budget("f:", 1_000)
    tier.put("s:1", value(b"x" * 100))
    for n in range(5):  # five entries of ~304 bytes into a 1,000-byte budget
        tier.put(f"f:{n}", value(b"i" * 300))
    held = tier.keys()
    assert [k for k in held if k.startswith("f:")] == ["f:2", "f:3", "f:4"]
    assert tier.get("s:1") is not None  # the session stays
    assert tier.budget_bytes("f:") <= 1_000
    assert tier.evictions == 2 and sum(evicted) == 2


def test_an_entry_larger_than_its_budget_is_not_held() -> None:
    tier = MemoryStore(100, 10_000)
    tier.set_budget("f:", 500)
    tier.put("f:big", value(b"i" * 600))
    assert tier.get("f:big") is None and tier.budget_bytes("f:") == 0


def test_replacing_and_removing_budgeted_entries_keeps_the_accounting_exact() -> None:
    tier = MemoryStore(100, 10_000)
    tier.set_budget("f:", 1_000)
    tier.put("f:a", value(b"1" * 400))
    tier.put("f:a", value(b"2" * 400))  # replaced: the stale queue entry must not evict the new one
    tier.put("f:b", value(b"3" * 400))
    assert tier.get("f:a").payload == b"2" * 400  # type: ignore[union-attr]
    tier.pop("f:b")
    assert tier.budget_bytes("f:") == len("f:a") + 400
    tier.clear("f:")
    assert tier.budget_bytes("f:") == 0 and len(tier) == 0


def test_a_budget_set_late_accounts_for_entries_already_held() -> None:
    tier = MemoryStore(100, 10_000)
    tier.put("f:old", value(b"o" * 600))
    tier.set_budget("f:", 1_000)
    tier.put("f:new", value(b"n" * 600))
    assert tier.get("f:old") is None and tier.get("f:new") is not None
