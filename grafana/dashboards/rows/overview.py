"""The Overview row: the original page's colour-coded metric cards beside its circular health
score, then a thin line of totals."""

from __future__ import annotations

from grafana.dashboards.panels import (
    HEALTH_STEPS,
    HIT_STEPS,
    RANGE,
    SEL,
    STATUS_MAPPINGS,
    PanelBuilder,
    defined,
    error_steps,
    gauge_panel,
    latency_steps,
    per_manager_latency,
    ratio,
    stat_panel,
    status_code,
    steps,
    value_map,
)
from mixin.config import MixinConfig
from mixin.record_names import BUCKETS, ERRORS, HITS, LOOKUPS, OPS

# A memory miss that Redis answers is a hit; lookups are first-tier lookups (as the JSON API).
HIT_RATIO = f"clamp_max({ratio(f'sum({HITS}{{{SEL}}})', f'sum({LOOKUPS}{{{SEL}}})')}, 1)"
P95_BY_MANAGER = defined(f"histogram_quantile(0.95, sum by (manager, le) ({BUCKETS}{{{SEL}}}))")


def panels(c: MixinConfig) -> list[PanelBuilder]:
    return [
        health_score(c),
        status(),
        active_sessions(),
        operations(),
        p95_latency(c),
        error_ratio(c),
        cache_hit_ratio(),
        slow_operations(),
        replicas_by_version(),
    ]


def health_score(c: MixinConfig) -> PanelBuilder:
    return gauge_panel(
        "Health score",
        "Overall health score 0-100 of the worst selected replica: 100 minus penalties for "
        "unavailable dependencies, latency, errors, cache efficiency and backlog. "
        "Green >= 80 healthy, yellow >= 60 degraded, orange >= 40 poor, red critical.",
        [(f'min(session_exporter_health_score{{component="overall", {SEL}}})', "score")],
        unit="none",
        minimum=0,
        maximum=100,
        thresholds=steps(*HEALTH_STEPS),
        width=6,
        height=6,
    )


def status() -> PanelBuilder:
    return stat_panel(
        "Status",
        "Overall health status of the worst selected replica (healthy, degraded, poor, critical).",
        [(f"max({status_code('overall', 'instance')})", "status")],
        unit="none",
        mappings=value_map(STATUS_MAPPINGS),
        height=6,
    )


def active_sessions() -> PanelBuilder:
    return stat_panel(
        "Active sessions",
        "Live sessions across all replicas (they share Redis, so this is the largest report, "
        "not a sum).",
        [(f"max(session_exporter_sessions_active{{{SEL}}})", "sessions")],
        unit="short",
        thresholds=steps(("blue", None)),
        height=6,
    )


def operations() -> PanelBuilder:
    return stat_panel(
        "Operations / s",
        "Session and Figma manager operations per second over 5 minutes, selected replicas summed.",
        [(f"sum({OPS}{{{SEL}}})", "ops/s")],
        unit="ops",
        thresholds=steps(("blue", None)),
        height=6,
    )


def p95_latency(c: MixinConfig) -> PanelBuilder:
    return per_manager_latency(
        stat_panel(
            "p95 latency",
            "95th percentile of operation duration over 5 minutes per manager, against its "
            "latency objective: session yellow above 100 ms, red above 500 ms; figma (a "
            "remote API) yellow above 2 s, red above 5 s (mixin/config.yml).",
            [(P95_BY_MANAGER, "{{manager}}")],
            unit="s",
            thresholds=latency_steps(c),
            height=6,
        ),
        c,
    )


def error_ratio(c: MixinConfig) -> PanelBuilder:
    return stat_panel(
        "Error ratio",
        "Share of operations that failed for server-side reasons over 5 minutes (unknown "
        "sessions and bad input excluded). Yellow above 1 %, red above 5 %.",
        [(ratio(f"sum({ERRORS}{{{SEL}}})", f"sum({OPS}{{{SEL}}})"), "errors")],
        unit="percentunit",
        thresholds=error_steps(c),
        decimals=2,
        height=6,
    )


def cache_hit_ratio() -> PanelBuilder:
    return stat_panel(
        "Cache hit ratio",
        "Share of cache lookups (memory and Redis tiers, both managers) that hit over "
        "5 minutes. Green >= 90 % excellent, yellow >= 75 % good, orange >= 50 % fair, "
        "red poor.",
        [(HIT_RATIO, "hit ratio")],
        unit="percentunit",
        thresholds=steps(*HIT_STEPS),
        decimals=1,
        height=6,
    )


def slow_operations() -> PanelBuilder:
    return stat_panel(
        "Slow operations",
        "Operations slower than the slow threshold (100 ms by default) in the dashboard's "
        "time range.",
        [(f"sum(increase(session_exporter_slow_operations_total{{{SEL}}}[{RANGE}]))", "slow")],
        unit="short",
        thresholds=steps(("green", None), ("yellow", 1.0)),
        decimals=0,
        width=12,
        height=3,
    )


def replicas_by_version() -> PanelBuilder:
    return stat_panel(
        "Replicas by version",
        "Scraped replicas per exporter version (session_exporter_build_info).",
        [(f"count by (version) (session_exporter_build_info{{{SEL}}})", "v{{version}}")],
        unit="short",
        thresholds=steps(("blue", None)),
        width=12,
        height=3,
    )
