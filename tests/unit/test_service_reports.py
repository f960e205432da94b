"""The service's pure parts: performance and cache reports, rates, and the subscriber fan-out."""

from __future__ import annotations

import asyncio

import msgspec
import orjson
import pytest
from prometheus_client import CollectorRegistry

from exporter.core.event_log import Event, EventLog
from exporter.core.instrumentation import Instrumentation
from exporter.core.metrics import Metrics
from exporter.monitoring.health import HealthThresholds
from exporter.monitoring.live_updates import MAX_EVENTS_PER_TAKE, Broadcaster, TooManySubscribers
from exporter.monitoring.statistics import (
    CacheCounts,
    Reading,
    cache_report,
    combined,
    performance,
    rates,
    window_error_ratio,
    window_p95_ms,
)


@pytest.fixture
def inst() -> Instrumentation:
    return Instrumentation(
        Metrics(CollectorRegistry()), "session", window_size=100, slow_threshold_ms=100
    )


def test_performance_from_known_durations(inst: Instrumentation) -> None:
    for ms in range(1, 101):  # 1..100 ms
        inst.record("get", ms / 1000)
    inst.record("create", 0.250, context="big payload")  # slow
    inst.record("delete", 0.002, error="not_found")

    report = performance(inst)
    get = report.operations["get"]
    assert (get.count, get.errors, get.window_count) == (100, 0, 100)
    assert get.min_ms == pytest.approx(1.0)
    assert get.max_ms == pytest.approx(100.0)
    assert get.avg_ms == pytest.approx(50.5)
    assert get.p50_ms == pytest.approx(50.0)
    assert get.p95_ms == pytest.approx(95.0)
    assert get.p99_ms == pytest.approx(99.0)
    assert report.operations["delete"].errors == 1
    assert report.operations["update"].p95_ms is None  # no data is null, not 0
    assert report.count == 102 and report.errors == 1
    slow = report.slow_operations
    assert slow.count == 1 and slow.threshold_ms == 100
    assert slow.recent[0].operation == "create"
    assert slow.recent[0].duration_ms == pytest.approx(250.0)
    assert slow.recent[0].context == "big payload"


def test_window_keeps_the_last_n() -> None:
    small = Instrumentation(Metrics(CollectorRegistry()), "session", window_size=10)
    for ms in range(1, 21):
        small.record("get", ms / 1000)
    get = performance(small).operations["get"]
    assert get.count == 20 and get.window_count == 10
    assert get.min_ms == pytest.approx(11.0)


def test_health_inputs_from_windows(inst: Instrumentation) -> None:
    assert window_p95_ms(inst) is None and window_error_ratio(inst) is None
    for _ in range(98):
        inst.record("get", 0.001)
    inst.record("get", 0.600)
    inst.record("update", 0.600, error="timeout")
    assert window_p95_ms(inst) == pytest.approx(1.0)
    assert window_error_ratio(inst) == pytest.approx(0.01)


def test_client_errors_count_as_errors_but_not_as_window_failures(inst: Instrumentation) -> None:
    for _ in range(9):
        inst.record("get", 0.001)
    inst.record("get", 0.001, error="not_found")  # an unknown session says nothing about health
    report = performance(inst).operations["get"]
    assert (report.errors, report.window_errors) == (1, 0)
    assert window_error_ratio(inst) == 0


def test_cache_hit_ratio_counts_a_redis_hit_after_a_memory_miss_as_a_hit(
    inst: Instrumentation,
) -> None:
    for _ in range(6):
        inst.record_cache("memory", True)
    for _ in range(4):
        inst.record_cache("memory", False)
    for _ in range(3):
        inst.record_cache("redis", True)
    inst.record_cache("redis", False)
    counts = CacheCounts.of(inst)
    assert counts.lookups == 10
    assert counts.hit_ratio == pytest.approx(0.9)
    report = cache_report(counts, HealthThresholds())
    assert msgspec.to_builtins(report.tiers.memory) == {
        "hits": 6,
        "misses": 4,
        "requests": 10,
        "hit_rate": 0.6,
    }
    assert report.tiers.redis.hit_rate == 0.75
    assert report.efficiency == "excellent"
    assert cache_report(CacheCounts(), HealthThresholds()).efficiency is None


def test_cache_counts_subtract_and_combine() -> None:
    early = CacheCounts({("memory", "hit"): 1, ("memory", "miss"): 1})
    late = CacheCounts({("memory", "hit"): 4, ("memory", "miss"): 3})
    assert (late - early).hit_ratio == pytest.approx(0.6)
    assert combined([early, late]).tier("memory") == (5, 4)
    only_redis = CacheCounts({("redis", "hit"): 1, ("redis", "miss"): 3})
    assert only_redis.hit_ratio == pytest.approx(0.25)


def test_rates_between_two_readings(inst: Instrumentation) -> None:
    before = Reading.of(inst, at=100.0)
    for _ in range(10):
        inst.record("get", 0.001)
    inst.record("create", 0.001, error="internal")
    inst.record_cache("memory", True)
    inst.record_cache("memory", False)
    now = Reading.of(inst, at=102.0)
    result = rates(now, before)
    assert result.operations_per_second == pytest.approx(5.5)
    assert result.per_operation["get"] == pytest.approx(5.0)
    assert result.errors_per_second == pytest.approx(0.5)
    assert result.cache_lookups_per_second == pytest.approx(1.0)
    assert result.cache_hit_rate == pytest.approx(0.5)
    assert rates(now, None).operations_per_second == 0


# ---- fan-out ---------------------------------------------------------------------------------


def test_snapshots_replace_unsent_ones_so_a_slow_subscriber_holds_one_of_each() -> None:
    hub = Broadcaster(EventLog(10, Metrics(CollectorRegistry())), max_clients=2)
    slow = hub.subscribe()
    for i in range(1000):
        hub.publish("metrics", {"n": i})
        hub.publish("health", {"n": i})
    messages = slow.take(hub.events)
    assert [(m.event, orjson.loads(m.data)["n"]) for m in messages] == [
        ("health", 999),
        ("metrics", 999),
    ]
    assert slow.take(hub.events) == []


def test_events_are_read_from_the_ring_with_ids_and_resume_after_last_event_id() -> None:
    log = EventLog(5, Metrics(CollectorRegistry()))
    hub = Broadcaster(log, max_clients=5)
    for i in range(3):
        log.record("cache_cleared", f"clear {i}")
    fresh = hub.subscribe()  # no Last-Event-ID: only what comes next
    resumed = hub.subscribe(last_event_id=1)
    log.record("failover", "redis down")
    assert [m.id for m in fresh.take(log)] == ["4"]
    assert [m.id for m in resumed.take(log)] == ["2", "3", "4"]
    assert resumed.take(log) == []
    ahead = hub.subscribe(last_event_id=99)  # from before a restart: never re-send, never stall
    log.record("failback", "redis back")
    assert [m.id for m in ahead.take(log)] == ["5"]


def test_a_subscriber_far_behind_reads_in_bounded_batches() -> None:
    log = EventLog(1000, Metrics(CollectorRegistry()))
    hub = Broadcaster(log, max_clients=1)
    sub = hub.subscribe(last_event_id=0)
    for i in range(MAX_EVENTS_PER_TAKE + 5):
        log.record("slow_operation", f"op {i}")
    assert len(sub.take(log)) == MAX_EVENTS_PER_TAKE
    assert len(sub.take(log)) == 5


def test_limit_and_count_callback() -> None:
    counts: list[int] = []
    hub = Broadcaster(
        EventLog(10, Metrics(CollectorRegistry())), max_clients=2, on_count=counts.append
    )
    first, _ = hub.subscribe(), hub.subscribe()
    with pytest.raises(TooManySubscribers):
        hub.subscribe()
    hub.unsubscribe(first)
    hub.unsubscribe(first)  # idempotent
    hub.subscribe()
    assert counts == [1, 2, 1, 2]


async def test_publish_wakes_waiters_and_close_ends_them() -> None:
    log = EventLog(10, Metrics(CollectorRegistry()))
    hub = Broadcaster(log, max_clients=3)
    sub = hub.subscribe()
    waiter = asyncio.create_task(sub.wait(5))
    await asyncio.sleep(0)
    log.record("failover", "x")
    await asyncio.wait_for(waiter, 1)
    waiter = asyncio.create_task(sub.wait(5))
    await asyncio.sleep(0)
    hub.close()
    await asyncio.wait_for(waiter, 1)
    assert sub.closed
    with pytest.raises(TooManySubscribers):
        hub.subscribe()


def test_event_log_restore_puts_history_first_and_renumbers() -> None:
    log = EventLog(4, Metrics(CollectorRegistry()))
    log.record("failover", "new 1")
    history = [Event(0, "cache_cleared", f"old {i}", float(i)) for i in range(3)]
    assert log.restore(history) == 3
    assert [(e.id, e.message) for e in log.since(0)] == [
        (1, "old 0"),
        (2, "old 1"),
        (3, "old 2"),
        (4, "new 1"),
    ]
    assert log.record("failback", "new 2").id == 5
    assert [e.id for e in log.since(0)] == [2, 3, 4, 5]  # capacity still bounds the ring
    assert log.last_id == 5


def test_session_activity_counts_successes_between_readings() -> None:
    from exporter.monitoring.statistics import session_activity

    def reading(create: int, create_errors: int, delete: int, expire: int) -> Reading:
        counts = {"create": create, "get": 50, "update": 0, "delete": delete, "expire": expire}
        errors = {"create": create_errors, "get": 3, "update": 0, "delete": 1, "expire": 0}
        return Reading(0.0, counts, errors, 0, CacheCounts())

    before, now = reading(10, 1, 4, 0), reading(15, 2, 4, 2)
    assert session_activity(now, before) == {"session_created": 4, "session_expired": 2}
    assert session_activity(before, None) == {"session_created": 9, "session_deleted": 3}
    assert session_activity(now, now) == {}
