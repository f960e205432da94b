"""The memory tier as the tiered store manages it: fills, what it keeps for a re-seed, what it
serves while coherence is unknown."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from exporter.core.clock import FleetClock
from exporter.core.metrics import Metrics
from exporter.store.contract import ReplayItem, StoredValue
from exporter.store.memory_store import MemoryStore
from exporter.store.memory_tier import MemoryTier
from exporter.store.recovery_side import RecoverySide
from exporter.store.store_reporting import StoreCounters
from tests.support.clock import ManualClock

SESSION, CACHED = "s:{a}", "figma:file"


def tier(*, redis_backed: bool = True, tracked: tuple[str, ...] = ()) -> tuple[MemoryTier, Metrics]:
    clock = ManualClock(1000.0)
    metrics = Metrics(CollectorRegistry())
    memory = MemoryStore(100, 1 << 20)
    memory.wall = clock
    fleet_clock = FleetClock(monotonic=clock, wall=clock)
    counters = StoreCounters(metrics)
    memory_tier = MemoryTier(
        memory, fleet_clock, counters, redis_backed=redis_backed, tracked_prefixes=tracked
    )
    return memory_tier, metrics


def value(version: int, payload: bytes = b"v") -> StoredValue:
    return StoredValue(payload, version, expires_at=2000.0)


def invalidations(metrics: Metrics, reason: str) -> float | None:
    name = "session_exporter_cache_invalidations_total"
    return metrics.registry.get_sample_value(name, {"reason": reason})


def test_a_fill_never_replaces_a_newer_version() -> None:
    memory_tier, _ = tier()
    memory_tier.fill(SESSION, value(2, b"new"))
    assert memory_tier.fill(SESSION, value(1, b"old")).payload == b"new"
    assert memory_tier.reads.get(SESSION) == value(2, b"new")


def test_while_coherence_is_unknown_only_own_writes_fill_and_nothing_is_served() -> None:
    memory_tier, metrics = tier()
    memory_tier.fill(SESSION, value(1))
    memory_tier.coherence_lost()
    assert memory_tier.reads.get(SESSION) is None
    memory_tier.fill(CACHED, value(1))
    memory_tier.fill("s:{own}", value(1), own=True)
    assert memory_tier.memory.peek(CACHED) is None
    assert memory_tier.memory.peek("s:{own}") is not None
    memory_tier.coherence_restored()  # what memory held while untracked may be stale: flushed
    assert len(memory_tier.memory) == 0 and invalidations(metrics, "tracking_lost") == 2
    assert [item.key for item in memory_tier.held_sessions()] == [SESSION, "s:{own}"]


def test_the_fallback_serves_memory_even_untracked_and_keeps_it_at_restoration() -> None:
    memory_tier, _ = tier()
    memory_tier.fill(SESSION, value(1))
    memory_tier.coherence_lost()
    memory_tier.serve_fallback(True)
    assert memory_tier.reads.get(SESSION) == value(1)
    memory_tier.coherence_restored()  # the failback flushes it instead
    assert memory_tier.reads.get(SESSION) == value(1)


def test_unheld_sessions_are_kept_for_a_reseed_cached_responses_are_not() -> None:
    memory_tier, _ = tier()
    memory_tier.fill(SESSION, value(1))
    memory_tier.fill(CACHED, value(1))
    assert memory_tier.unhold(SESSION) and memory_tier.unhold(CACHED)
    assert not memory_tier.unhold(SESSION)  # no longer held
    assert memory_tier.reads.get(SESSION) is None
    assert [item.key for item in memory_tier.held_sessions()] == [SESSION]


def test_without_redis_nothing_is_kept_aside() -> None:
    memory_tier, _ = tier(redis_backed=False)
    memory_tier.fill(SESSION, value(1))
    memory_tier.unhold(SESSION)
    memory_tier.fill("s:{b}", value(1))
    memory_tier.flush("flush")
    assert memory_tier.held_sessions() == []


def test_held_sessions_are_the_newest_of_memory_and_reserve() -> None:
    memory_tier, _ = tier()
    memory_tier.reserve.keep(ReplayItem(SESSION, 3, 2000.0, None))  # deleted here at version 3
    memory_tier.memory.put(SESSION, value(2))  # an older value memory still holds
    memory_tier.reserve.keep(ReplayItem("s:{b}", 1, 2000.0, value(1)))
    memory_tier.memory.put("s:{b}", value(4))
    memory_tier.memory.put("s:{gone}", StoredValue(b"v", 1, expires_at=900.0))  # expired
    held = {item.key: item for item in memory_tier.held_sessions()}
    assert held[SESSION].value is None and held["s:{b}"].version == 4 and "s:{gone}" not in held


def test_a_flush_keeps_sessions_for_a_reseed_unless_the_operator_flushed_redis() -> None:
    memory_tier, metrics = tier()
    memory_tier.fill(SESSION, value(1))
    assert memory_tier.flush("flush") == 1 and invalidations(metrics, "flush") == 1
    assert [item.key for item in memory_tier.held_sessions()] == [SESSION]
    memory_tier.fill(SESSION, value(2))
    memory_tier.flush("flush", keep_for_reseed=False)
    assert memory_tier.held_sessions() == []


def test_a_change_elsewhere_drops_our_copy_and_is_counted() -> None:
    memory_tier, metrics = tier()
    memory_tier.fill(SESSION, value(1))
    assert memory_tier.changed_elsewhere(SESSION, "remote")
    assert not memory_tier.changed_elsewhere(SESSION, "remote")
    assert invalidations(metrics, "remote") == 1 and memory_tier.held_sessions() == []


def test_clear_keeps_the_only_copies() -> None:
    memory_tier, metrics = tier()
    memory_tier.fill(SESSION, value(1))
    memory_tier.fill("s:{journalled}", value(1))
    memory_tier.memory.pin("s:{journalled}")
    assert memory_tier.clear("s:") == 1 and invalidations(metrics, "clear") == 1
    assert memory_tier.reads.get("s:{journalled}") is not None


def test_replayed_writes_expected_to_echo_unless_skipped() -> None:
    memory_tier, _ = tier(tracked=("s:", "f:"))
    keys = ("s:{a}", "s:{b}", "s:{c}", "f:x")
    items = [ReplayItem(key, 1, 2000.0, value(1)) for key in keys]
    memory_tier.fill("s:{a}", value(1))
    memory_tier.fill("s:{b}", value(1))
    expected = memory_tier.expect_echoes(items)
    # What memory holds may be tracked, and so may a session it dropped (flushed into the
    # reserve: Redis still tracks it); a key of another kind that memory does not hold is not.
    assert expected == [True, True, True, False]
    items, expected = items[:2], expected[:2]
    memory_tier.echoes_missed(items, expected, sent=[True, False])
    assert memory_tier.guard.is_echo("s:{a}") and not memory_tier.guard.is_echo("s:{b}")


def test_a_replayed_write_is_kept_for_a_reseed_and_its_memory_copy_parked() -> None:
    """What recovery does with each replayed journal entry (`RecoverySide.replayed`)."""
    memory_tier, _ = tier()
    parked: list[str] = []
    side = RecoverySide(
        memory_tier,
        None,  # type: ignore[arg-type]
        fallback_active=lambda: False,
        park=lambda key, value: parked.append(key),
    )
    ours = ReplayItem(SESSION, 5, 2000.0, value(5, b"ours"))
    # Written, but memory had dropped its copy (another replica's older replay invalidated it).
    side.replayed(ours, written=True)
    assert [item.value for item in memory_tier.held_sessions()] == [value(5, b"ours")]
    assert parked == []
    # Written, memory holding it: parked too (a newer write elsewhere may have landed unheard).
    assert ours.value is not None
    memory_tier.fill(ours.key, ours.value, own=True)
    side.replayed(ours, written=True)
    assert parked == [ours.key]
    parked.clear()
    # Skipped: Redis held this version already (the write that timed out, taken late), or a
    # newer value or a delete: parked (unserved until Redis says which), kept for a re-seed.
    other = ReplayItem("s:{b}", 3, 2000.0, value(3, b"maybe lost"))
    assert other.value is not None
    memory_tier.fill(other.key, other.value, own=True)
    side.replayed(other, written=False)
    assert parked == [other.key]
    assert other in memory_tier.held_sessions()
