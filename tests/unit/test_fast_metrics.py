"""fast_metrics families expose exactly what prometheus_client's own would for the same
observations: names, help, labels, `le` strings, cumulative buckets, series at 0."""

from __future__ import annotations

import math
import shutil
import subprocess
from typing import Any, Protocol

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter.core.fast_metrics import FastCounter, FastHistogram
from exporter.core.metrics import LATENCY_BUCKETS, Metrics
from tests.support.redis_server import missing_dependency

BUCKETS = (0.001, 0.01, 0.1, 1.0)
# Exactly on each boundary (le is inclusive), just above it, below the first, above the last, 0.
OBSERVATIONS = (0.0, 0.0005, 0.001, 0.0010001, 0.01, 0.05, 0.1, 0.1000001, 1.0, 1.5, 99.0)


# What the two libraries' families and children share, so one loop drives both.
class Observer(Protocol):
    def observe(self, amount: float) -> None: ...


class Incrementer(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class CounterFamily(Protocol):
    def labels(self, *values: Any, **named: Any) -> Incrementer: ...


@pytest.fixture(autouse=True)
def no_created_series() -> None:
    disable_created_metrics()  # type: ignore[no-untyped-call]  # as Metrics does: the fast families never emit `_created`


def pair() -> tuple[CollectorRegistry, CollectorRegistry]:
    return CollectorRegistry(), CollectorRegistry()


def openmetrics(registry: CollectorRegistry) -> str:
    text: bytes = generate_openmetrics(registry)  # type: ignore[no-untyped-call]
    return text.decode()


def assert_same_exposition(theirs: CollectorRegistry, ours: CollectorRegistry) -> None:
    assert generate_latest(ours).decode() == generate_latest(theirs).decode()
    assert openmetrics(ours) == openmetrics(theirs)


def test_histogram_exposition_matches_prometheus_client() -> None:
    theirs, ours = pair()
    reference = Histogram(
        "t_seconds", "Duration.", ("op", "tier"), buckets=BUCKETS, registry=theirs
    )
    fast = FastHistogram("t_seconds", "Duration.", ("op", "tier"), buckets=BUCKETS, registry=ours)
    for family in (reference, fast):
        family.labels("get", "memory")  # a series that stays at 0
        child = family.labels("set", "redis")
        for value in OBSERVATIONS:
            child.observe(value)
    assert_same_exposition(theirs, ours)


@pytest.mark.parametrize("value", [*BUCKETS, 0.0])
def test_a_value_exactly_on_a_boundary_counts_in_that_bucket(value: float) -> None:
    registry = CollectorRegistry()
    FastHistogram("b_seconds", "B.", ("op",), buckets=BUCKETS, registry=registry).labels(
        "x"
    ).observe(value)
    for bound in (*BUCKETS, math.inf):
        le = "+Inf" if bound == math.inf else repr(bound)
        expected = 1.0 if value <= bound else 0.0
        assert registry.get_sample_value("b_seconds_bucket", {"op": "x", "le": le}) == expected, le
    assert registry.get_sample_value("b_seconds_count", {"op": "x"}) == 1
    assert registry.get_sample_value("b_seconds_sum", {"op": "x"}) == value


def test_values_above_the_last_bucket_and_nan_match_prometheus_client() -> None:
    theirs, ours = pair()
    children: list[Observer] = [
        Histogram("n_seconds", "N.", ("op",), buckets=BUCKETS, registry=theirs).labels("x"),
        FastHistogram("n_seconds", "N.", ("op",), buckets=BUCKETS, registry=ours).labels("x"),
    ]
    for child in children:
        child.observe(1e9)
        child.observe(math.nan)  # only the sum, no bucket
    assert_same_exposition(theirs, ours)
    assert ours.get_sample_value("n_seconds_count", {"op": "x"}) == 1


def test_counter_exposition_matches_prometheus_client() -> None:
    theirs, ours = pair()
    labelled: list[CounterFamily] = [
        Counter("c_requests", "Requests.", ("route", "status"), registry=theirs),
        FastCounter("c_requests", "Requests.", ("route", "status"), registry=ours),
    ]
    plain: list[Incrementer] = [
        Counter("c_created_total", "Created.", registry=theirs),
        FastCounter("c_created_total", "Created.", registry=ours),
    ]
    for family in labelled:
        family.labels("/a", "200").inc()
        family.labels("/a", 404).inc(2.5)  # non-str values are str()-ed, as prometheus_client does
        family.labels(route="/b", status="500")  # stays at 0
    for counter in plain:
        counter.inc()
        counter.inc(3)
    assert_same_exposition(theirs, ours)
    assert ours.get_sample_value("c_requests_total", {"route": "/a", "status": "404"}) == 2.5
    assert ours.get_sample_value("c_created_total") == 4


def test_the_exporter_catalogue_exposes_identically_with_every_series_at_zero() -> None:
    metrics = Metrics(CollectorRegistry())
    get = {"manager": "session", "operation": "get"}
    registry = metrics.registry
    for error in ("not_found", "timeout", "internal"):
        assert (
            registry.get_sample_value(
                "session_exporter_operation_errors_total", {**get, "error": error}
            )
            == 0
        )
    assert registry.get_sample_value("session_exporter_operation_duration_seconds_count", get) == 0
    assert registry.get_sample_value("session_exporter_slow_operations_total", get) == 0
    cache = {"manager": "figma", "tier": "redis", "result": "miss"}
    assert registry.get_sample_value("session_exporter_cache_requests_total", cache) == 0
    for kind in ("created", "retrieved", "updated", "deleted", "expired"):
        assert registry.get_sample_value(f"session_exporter_sessions_{kind}_total") == 0
    buckets = [
        s.labels["le"]
        for f in registry.collect()
        if f.name == "session_exporter_operation_duration_seconds"
        for s in f.samples
        if s.name.endswith("_bucket")
        and s.labels["operation"] == "get"
        and s.labels["manager"] == "session"
    ]
    assert buckets == [repr(b) for b in LATENCY_BUCKETS] + ["+Inf"]


def test_families_register_their_names_so_duplicates_are_refused() -> None:
    registry = CollectorRegistry()
    FastCounter("d_total", "D.", registry=registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter("d", "D again.", registry=registry)
    FastHistogram("e_seconds", "E.", buckets=BUCKETS, registry=registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter("e_seconds_count", "E count.", registry=registry)


def test_label_misuse_fails_like_prometheus_client() -> None:
    labelled = FastCounter("f", "F.", ("a", "b"))
    with pytest.raises(ValueError, match="Incorrect label count"):
        labelled.labels("only-one")
    with pytest.raises(ValueError, match="Incorrect label names"):
        labelled.labels(a="1", c="2")
    with pytest.raises(ValueError, match="missing label values"):
        labelled.inc()
    with pytest.raises(ValueError, match="No label names"):
        FastCounter("g", "G.").labels("x")
    with pytest.raises(ValueError, match="non-negative"):
        labelled.labels("1", "2").inc(-1)
    with pytest.raises(ValueError, match="sorted"):
        FastHistogram("h", "H.", buckets=(1.0, 0.5))


def test_children_are_bound_once() -> None:
    family = FastHistogram("k_seconds", "K.", ("op",), buckets=BUCKETS)
    assert family.labels("get") is family.labels("get") is family.labels(op="get")


def test_promtool_accepts_the_exposition() -> None:
    if shutil.which("promtool") is None:
        missing_dependency("promtool", "install the Debian package prometheus")
    metrics = Metrics(CollectorRegistry())
    metrics.op("session", "get").duration.observe(0.0001)
    metrics.http_requests.labels("/api/sessions/{id}", "GET", "200").inc()
    metrics.http_request_duration.labels("/api/sessions/{id}", "GET").observe(0.002)
    text = generate_latest(metrics.registry).decode()
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
