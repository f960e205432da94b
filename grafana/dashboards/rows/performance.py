"""The Performance row: latency percentiles per manager, operation and replica, throughput, slow
operations, errors, the session lifecycle and the HTTP API's own requests."""

from __future__ import annotations

from grafana.dashboards.panels import (
    SEL,
    PanelBuilder,
    defined,
    error_steps,
    latency_steps,
    per_manager_latency,
    quantile_by,
    rate_by,
    ratio,
    timeseries_panel,
)
from mixin.config import MixinConfig
from mixin.record_names import BUCKETS, ERRORS, OPS, quantile

DURATION = "session_exporter_operation_duration_seconds"


def panels(c: MixinConfig) -> list[PanelBuilder]:
    return [
        latency_by_manager(c),
        latency_by_operation(c),
        average_latency(c),
        p95_by_replica(c),
        p50_p99_by_replica(c),
        throughput_by_operation(),
        slow_operations(),
        errors_by_type(),
        error_ratio_by_manager(c),
        session_lifecycle(),
        http_requests(),
        http_p95_latency(c),
    ]


def latency_by_manager(c: MixinConfig) -> PanelBuilder:
    return per_manager_latency(
        timeseries_panel(
            "Latency percentiles by manager",
            "p50, p95 and p99 of operation duration per manager over 5 minutes (selected replicas "
            "together). The dashed lines are the 100 ms slow threshold and 500 ms.",
            [
                (
                    defined(f"histogram_quantile({q}, sum by (manager, le) ({BUCKETS}{{{SEL}}}))"),
                    f"{{{{manager}}}} {name}",
                )
                for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))
            ],
            unit="s",
            thresholds=latency_steps(c),
            table_legend=True,
        ),
        c,
    )


def latency_by_operation(c: MixinConfig) -> PanelBuilder:
    return per_manager_latency(
        timeseries_panel(
            "Latency percentiles by operation",
            "p50, p95 and p99 of each operation's duration (the JSON API's per-operation "
            "percentiles, over the dashboard's rate interval instead of the last 100 operations).",
            [
                (
                    quantile_by(q, DURATION, "manager, operation"),
                    f"{{{{manager}}}} {{{{operation}}}} {name}",
                )
                for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))
            ],
            unit="s",
            thresholds=latency_steps(c),
            table_legend=True,
        ),
        c,
    )


def average_latency(c: MixinConfig) -> PanelBuilder:
    return per_manager_latency(
        timeseries_panel(
            "Average latency by manager",
            "Mean operation duration (sum / count) per manager: the seed's average response time.",
            [
                (
                    ratio(
                        rate_by(DURATION + "_sum", "manager"),
                        rate_by(DURATION + "_count", "manager"),
                    ),
                    "{{manager}}",
                )
            ],
            unit="s",
            thresholds=latency_steps(c),
            width=8,
        ),
        c,
    )


def p95_by_replica(c: MixinConfig) -> PanelBuilder:
    return per_manager_latency(
        timeseries_panel(
            "p95 latency by replica",
            "p95 per replica and manager (recording rule), to spot one slow replica.",
            [
                (
                    f"{quantile('95')}{{{SEL}}}",
                    "{{instance}} {{manager}}",
                )
            ],
            unit="s",
            thresholds=latency_steps(c),
            width=8,
        ),
        c,
    )


def p50_p99_by_replica(c: MixinConfig) -> PanelBuilder:
    return per_manager_latency(
        timeseries_panel(
            "p50 / p99 by replica",
            "Median and 99th percentile per replica and manager (recording rules).",
            [
                (
                    f"{quantile('50')}{{{SEL}}}",
                    "{{instance}} {{manager}} p50",
                ),
                (
                    f"{quantile('99')}{{{SEL}}}",
                    "{{instance}} {{manager}} p99",
                ),
            ],
            unit="s",
            thresholds=latency_steps(c),
            width=8,
        ),
        c,
    )


def throughput_by_operation() -> PanelBuilder:
    return timeseries_panel(
        "Throughput by operation",
        "Operations per second by manager and operation.",
        [(rate_by(DURATION + "_count", "manager, operation"), "{{manager}} {{operation}}")],
        unit="ops",
        table_legend=True,
    )


def slow_operations() -> PanelBuilder:
    return timeseries_panel(
        "Slow operations",
        "Operations per second slower than the slow threshold (--slow-threshold-ms, 100 ms by "
        "default). The JSON API lists the recent ones with context.",
        [
            (
                rate_by("session_exporter_slow_operations_total", "manager, operation"),
                "{{manager}} {{operation}}",
            )
        ],
        unit="ops",
        bars=True,
    )


def errors_by_type() -> PanelBuilder:
    return timeseries_panel(
        "Errors by type",
        "Failed operations per second by manager and error type. not_found and invalid are the "
        "caller's doing and are left out of the error ratio.",
        [
            (
                rate_by("session_exporter_operation_errors_total", "manager, error"),
                "{{manager}} {{error}}",
            )
        ],
        unit="ops",
        bars=True,
    )


def error_ratio_by_manager(c: MixinConfig) -> PanelBuilder:
    return timeseries_panel(
        "Error ratio by manager",
        "Share of operations failing for server-side reasons over 5 minutes.",
        [
            (
                ratio(
                    f"sum by (manager) ({ERRORS}{{{SEL}}})",
                    f"sum by (manager) ({OPS}{{{SEL}}})",
                ),
                "{{manager}}",
            )
        ],
        unit="percentunit",
        thresholds=error_steps(c),
    )


def session_lifecycle() -> PanelBuilder:
    return timeseries_panel(
        "Session lifecycle",
        "Sessions created, read, replaced, deleted and expired per second (expiries are "
        "counted once across replicas).",
        [
            (
                rate_by(f"session_exporter_sessions_{kind}_total", "instance"),
                f"{{{{instance}}}} {kind}",
            )
            for kind in ("created", "retrieved", "updated", "deleted", "expired")
        ],
        unit="ops",
        table_legend=True,
    )


def http_requests() -> PanelBuilder:
    return timeseries_panel(
        "HTTP requests by route and status",
        "Requests per second served by the exporter's HTTP API, by route template and status.",
        [
            (
                rate_by("session_exporter_http_requests_total", "route, method, status"),
                "{{method}} {{route}} {{status}}",
            )
        ],
        unit="reqps",
        table_legend=True,
    )


def http_p95_latency(c: MixinConfig) -> PanelBuilder:
    return timeseries_panel(
        "HTTP p95 latency by route",
        "95th percentile of HTTP request duration by route template.",
        [
            (
                quantile_by(
                    0.95, "session_exporter_http_request_duration_seconds", "route, method"
                ),
                "{{method}} {{route}}",
            )
        ],
        unit="s",
        thresholds=latency_steps(c),
        table_legend=True,
    )
