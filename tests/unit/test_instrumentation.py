"""Instrumentation keeps Prometheus, the JSON counts and the rolling windows consistent."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter.core.access_stats import AccessStats
from exporter.core.instrumentation import Instrumentation
from exporter.core.metrics import Metrics
from exporter.monitoring.statistics import recent_error

GET = {"manager": "session", "operation": "get"}


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(f"session_exporter_{name}", labels)


def test_record_feeds_histogram_errors_slow_and_windows() -> None:
    metrics = Metrics(CollectorRegistry())
    inst = Instrumentation(metrics, "session", slow_threshold_ms=100)
    inst.record("get", 0.00005)  # first bucket
    inst.record("get", 0.1)  # exactly the threshold: not slow, in the 0.1 bucket
    inst.record("get", 0.2, error="timeout", context="ctx")  # slow and a server error
    inst.record("get", 0.001, error="not_found")  # a client error
    assert sample(metrics, "operation_duration_seconds_count", **GET) == 4
    assert sample(metrics, "operation_duration_seconds_bucket", **GET, le="0.0001") == 1
    assert sample(metrics, "operation_duration_seconds_bucket", **GET, le="0.1") == 3
    assert sample(metrics, "operation_duration_seconds_sum", **GET) == pytest.approx(0.30105)
    assert sample(metrics, "operation_errors_total", **GET, error="timeout") == 1
    assert sample(metrics, "operation_errors_total", **GET, error="not_found") == 1
    assert sample(metrics, "slow_operations_total", **GET) == 1
    assert inst.counts["get"] == 4 and inst.error_counts["get"] == 2
    assert inst.slow_count == 1 and inst.slow_recent[0].context == "ctx"
    window = inst.windows["get"]
    assert list(window.durations) == pytest.approx([0.05, 100.0, 200.0, 1.0])
    assert list(window.failures) == [False, False, True, False]  # not_found is the client's


def test_record_cache_counts_by_tier_and_result() -> None:
    metrics = Metrics(CollectorRegistry())
    inst = Instrumentation(metrics, "figma")
    for tier, hit in (("memory", True), ("memory", False), ("redis", True), ("memory", True)):
        inst.record_cache(tier, hit)
    assert inst.cache_counts == {
        ("memory", "hit"): 2,
        ("memory", "miss"): 1,
        ("redis", "hit"): 1,
        ("redis", "miss"): 0,
    }
    hits = sample(metrics, "cache_requests_total", manager="figma", tier="memory", result="hit")
    assert hits == 2
    other = sample(metrics, "cache_requests_total", manager="session", tier="memory", result="hit")
    assert other == 0


def test_an_unknown_error_type_is_refused() -> None:
    inst = Instrumentation(Metrics(CollectorRegistry()), "session")
    with pytest.raises(KeyError):
        inst.record("get", 0.001, error="made_up")


def own_exposition(metrics: Metrics) -> list[bytes]:
    """The exporter's own lines: process_* and python_gc_* move between scrapes by themselves."""
    lines = generate_latest(metrics.registry).splitlines()
    return [line for line in lines if b"session_exporter_" in line]


def test_hit_recorder_equals_the_calls_it_replaces() -> None:
    separate, combined = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    a = Instrumentation(separate, "session", slow_threshold_ms=1)
    b = Instrumentation(combined, "session", slow_threshold_ms=1)
    access_a, access_b = AccessStats(), AccessStats()
    hit = b.hit_recorder("get", "memory", combined.sessions_retrieved.child(), access_b)
    # 0.002 is slow; 0.3 is past the first bucket; a new session once the first is tracked
    for i, seconds in enumerate((0.00001, 0.0003, 0.002, 0.0, 0.3)):
        session_id = f"s{i % 2}"
        a.record_cache("memory", True)
        a.record("get", seconds)
        separate.sessions_retrieved.inc()
        access_a.memory_read(session_id, seconds, seconds)
        hit(session_id, 0.0, seconds)  # started at 0, ended at `seconds`
    assert own_exposition(combined) == own_exposition(separate)
    assert (b.counts, b.error_counts, b.cache_counts) == (a.counts, a.error_counts, a.cache_counts)
    assert list(b.windows["get"].durations) == list(a.windows["get"].durations)
    assert list(b.windows["get"].failures) == list(a.windows["get"].failures)
    assert b.slow_count == a.slow_count == 2
    assert sample(combined, "sessions_retrieved_total") == 5
    for session_id in ("s0", "s1"):  # the fields, not `view`: it reads the clock
        fields = ("memory_reads", "other_reads", "writes", "total_seconds", "max_seconds", "last")
        expected = [getattr(access_a.entries[session_id], field) for field in fields]
        assert [getattr(access_b.entries[session_id], field) for field in fields] == expected


def test_json_counts_are_read_from_the_series_so_a_manager_is_instrumented_once() -> None:
    metrics = Metrics(CollectorRegistry())
    inst = Instrumentation(metrics, "session")
    inst.record("get", 0.001)
    inst.record_cache("memory", True)
    assert inst.counts["get"] == sample(metrics, "operation_duration_seconds_count", **GET) == 1
    hits = sample(metrics, "cache_requests_total", manager="session", tier="memory", result="hit")
    assert inst.cache_counts["memory", "hit"] == hits == 1
    with pytest.raises(ValueError, match="already instrumented"):
        Instrumentation(metrics, "session")
    Instrumentation(metrics, "figma")  # another manager has its own series


def test_recent_errors_say_what_failed_but_never_the_message() -> None:
    import time as _time

    from exporter.core.errors import SessionNotFound, UpstreamTimeout

    inst = Instrumentation(Metrics(CollectorRegistry()), "figma")
    started = _time.perf_counter()
    inst.record_exception("file", started, UpstreamTimeout("figma_api", "GET files timed out"))
    inst.record_exception("nodes", started, SessionNotFound("session 'secret-id' not found"), "x")
    newest, oldest = reversed(inst.errors_recent)
    assert recent_error(oldest).detail == "UpstreamTimeout from figma_api (timeout)"
    assert oldest.error == "timeout" and not recent_error(oldest).client_error
    assert newest.detail == "SessionNotFound: x" and recent_error(newest).client_error
    assert "secret-id" not in repr(list(inst.errors_recent))
