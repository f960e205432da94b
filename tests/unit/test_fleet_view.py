"""The fleet view's arithmetic and the per-session counters' differences, without Redis."""

from __future__ import annotations

from exporter.core.access_stats import AccessStats
from exporter.monitoring.fleet_view import ReplicaHealth, fleet_view, summary
from exporter.monitoring.session_counters import SessionCounters, fleet_access


def test_totals_add_rates_and_weigh_hit_rates_by_lookups() -> None:
    a = summary("a", 10.0, ops=5.0, lookups=100.0, hit_rate=0.9)
    b = summary("b", 10.0, ops=7.0, lookups=0.0)  # no lookups: no hit rate, no weight
    c = summary("c", 10.0, ops=1.0, lookups=300.0, hit_rate=0.5)
    view = fleet_view([a, b, c], me="b", now=12.0)
    assert view.totals.operations_per_second == 13.0
    assert view.totals.cache_hit_rate == round((90 + 150) / 400, 4)
    assert view.replicas[0].replica == "b"
    assert all(r.age_seconds == 2.0 for r in view.replicas)


def test_the_worst_status_ignores_disabled_and_the_lowest_score_is_kept() -> None:
    a = summary("a", 1.0)
    b = summary("b", 1.0)
    b.health = ReplicaHealth(55.0, "poor")
    c = summary("c", 1.0)
    c.health = ReplicaHealth(100.0, "disabled")
    view = fleet_view([a, b, c], me="a", now=1.0)
    assert view.totals.worst_status == "poor"
    assert view.totals.lowest_score == 55.0


def test_one_entry_per_replica_newest_first_and_at_most_the_limit() -> None:
    summaries = [summary(f"r{n}", float(n)) for n in range(10)] + [summary("r3", 20.0)]
    view = fleet_view(summaries, me="r0", now=30.0, limit=4)
    assert [r.replica for r in view.replicas] == ["r0", "r3", "r9", "r8"]
    assert view.truncated is True and view.totals.replicas == 4
    assert fleet_view([], me="x", now=0.0, status="disabled").totals.worst_status is None


def test_counters_send_differences_once_and_start_over_for_a_retracked_session() -> None:
    stats = AccessStats()
    counters = SessionCounters(stats, "p:", lambda _: 1000.0, default_ttl=60.0)
    for _ in range(3):
        stats.memory_read("s", 0.001, 1.0)
    stats.write("s", 0.002, 1.0)
    first = counters.pending()
    assert [(d.memory_reads, d.other_reads, d.writes) for d in first] == [(3, 0, 1)]
    assert round(first[0].total_ms, 6) == 5.0
    counters.written(first)
    stats.other_read("s", 0.001, 2.0)
    assert counters.unsent("s")[:3] == (0, 1, 0)
    assert [(d.memory_reads, d.other_reads) for d in counters.pending()] == [(0, 1)]
    stats.forget("s")
    stats.memory_read("s", 0.001, 3.0)  # tracked again from zero: all of it is new
    assert [(d.memory_reads, d.other_reads) for d in counters.pending()] == [(1, 0)]
    assert counters.ttl("s", now=990.5) == 10  # the session's own expiry
    assert SessionCounters(stats, "p:", lambda _: None, default_ttl=60.0).ttl("s", 0.0) == 60


def test_at_most_the_limit_per_flush() -> None:
    stats = AccessStats()
    for n in range(10):
        stats.write(f"s{n}", 0.001, 1.0)
    counters = SessionCounters(stats, "p:", lambda _: None, default_ttl=60.0)
    assert len(counters.pending(limit=4)) == 4


def test_fleet_access_adds_what_this_replica_has_not_sent() -> None:
    stored = {"memory_reads": "4", "other_reads": "1", "writes": "1", "total_ms": "12.0"}
    access = fleet_access(stored, (2, 0, 0, 0.003))
    assert access is not None
    assert access["reads"] == 7 and access["writes"] == 1
    assert access["cache"] == {"memory_hits": 6, "memory_misses": 1, "hit_ratio": round(6 / 7, 4)}
    assert access["avg_ms"] == round(15.0 / 8, 3)
    assert fleet_access({}, (0, 0, 0, 0.0)) is None
