"""The Health row: scores, statuses and issues per component, upstream availability and probes,
Figma API and MCP requests, and screenshots."""

from __future__ import annotations

from exporter.core.catalog import SERVICES, ServiceSpec
from grafana.dashboards.panels import (
    HEALTH_STEPS,
    SEL,
    STATUS_MAPPINGS,
    PanelBuilder,
    quantile_by,
    rate_by,
    ratio,
    state_panel,
    status_code,
    steps,
    timeseries_panel,
    value_map,
)
from mixin.config import MixinConfig

UPSTREAM_REQUESTS = "session_exporter_upstream_requests_total"
OK_2XX = 'status="2xx"'
NOT_ERROR = 'outcome!="error"'


def panels(c: MixinConfig) -> list[PanelBuilder]:
    return [
        health_score_over_time(),
        health_status(),
        health_issues(),
        upstream_availability(),
        probe_duration(),
        probe_failures(),
        upstream_success_ratio(),
        *(upstream_requests(spec) for spec in SERVICES if spec.endpoints),
        upstream_latency(),
        screenshot_duration(),
        screenshots_by_outcome(),
        screenshot_success_ratio(),
        screenshot_size(),
    ]


def health_score_over_time() -> PanelBuilder:
    return timeseries_panel(
        "Health score over time",
        "Health score per component (session manager, Figma manager, overall), worst selected "
        "replica. Dashed lines at 40, 60 and 80 separate critical, poor, degraded and healthy.",
        [(f"min by (component) (session_exporter_health_score{{{SEL}}})", "{{component}}")],
        unit="none",
        thresholds=steps(*HEALTH_STEPS),
        maximum=100,
    )


def health_status() -> PanelBuilder:
    return state_panel(
        "Health status by component",
        "Status per component over time: healthy, degraded, poor, critical, or disabled when "
        "its service is not configured.",
        [(f"max by (component) ({status_code('.+', 'instance, component')})", "{{component}}")],
        mappings=value_map(STATUS_MAPPINGS),
    )


def health_issues() -> PanelBuilder:
    return state_panel(
        "Active health issues",
        "Issues behind the health score while they are present (code per component); "
        "/api/session-metrics/health-check gives their values and thresholds.",
        [
            (
                f"max by (component, code) (session_exporter_health_issues{{{SEL}}}) > 0",
                "{{component}}: {{code}}",
            )
        ],
        mappings=value_map({1: ("active", "red")}),
    )


def upstream_availability() -> PanelBuilder:
    return state_panel(
        "Upstream availability",
        "Last probe result of each service per replica: up, down, or disabled when not configured.",
        [
            (
                # A disabled service exports no upstream_up: its lane comes from enabled == 0.
                f"session_exporter_upstream_up{{{SEL}}} or on (job, instance, service) "
                f"(session_exporter_upstream_enabled{{{SEL}}} == 0) + 2",
                "{{instance}} {{service}}",
            )
        ],
        mappings=value_map({0: ("down", "red"), 1: ("up", "green"), 2: ("disabled", "text")}),
    )


def probe_duration() -> PanelBuilder:
    return timeseries_panel(
        "Probe duration",
        "Duration of the last availability probe of each service.",
        [
            (
                f"max by (service) (session_exporter_upstream_probe_duration_seconds{{{SEL}}})",
                "{{service}}",
            )
        ],
        unit="s",
        width=8,
    )


def probe_failures() -> PanelBuilder:
    return timeseries_panel(
        "Probe failures by reason",
        "Failed availability probes per second by service and reason (timeout, connection, "
        "auth, status, protocol, error).",
        [
            (
                rate_by("session_exporter_upstream_probe_failures_total", "service, reason"),
                "{{service}} {{reason}}",
            )
        ],
        unit="ops",
        bars=True,
        width=8,
    )


def upstream_success_ratio() -> PanelBuilder:
    return timeseries_panel(
        "Upstream success ratio",
        "Share of Figma API and MCP requests answered with 2xx.",
        [
            (
                ratio(
                    rate_by(UPSTREAM_REQUESTS, "service", OK_2XX),
                    rate_by(UPSTREAM_REQUESTS, "service"),
                ),
                "{{service}}",
            )
        ],
        unit="percentunit",
        thresholds=steps(("red", None), ("yellow", 0.95), ("green", 0.99)),
        maximum=1,
        width=8,
    )


def upstream_requests(spec: ServiceSpec) -> PanelBuilder:
    """One panel per upstream service with request metrics (exporter/core/catalog.py)."""
    return timeseries_panel(
        f"{spec.display_name} requests by status",
        f"{spec.display_name} requests per second by endpoint and status class (2xx, 4xx, 429, "
        "5xx, timeout, error).",
        [
            (
                rate_by(UPSTREAM_REQUESTS, "endpoint, status", f'service="{spec.name}"'),
                "{{endpoint}} {{status}}",
            )
        ],
        unit="reqps",
        table_legend=True,
    )


def upstream_latency() -> PanelBuilder:
    return timeseries_panel(
        "Upstream request latency",
        "95th percentile of upstream request duration by service and endpoint.",
        [
            (
                quantile_by(
                    0.95,
                    "session_exporter_upstream_request_duration_seconds",
                    "service, endpoint",
                ),
                "{{service}} {{endpoint}}",
            )
        ],
        unit="s",
        table_legend=True,
    )


def screenshot_duration() -> PanelBuilder:
    return timeseries_panel(
        "Screenshot duration",
        "p50 and p95 of screenshot capture duration by source (Figma API or MCP), cache hits "
        "included.",
        [
            (
                quantile_by(q, "session_exporter_screenshot_duration_seconds", "source"),
                f"{{{{source}}}} {name}",
            )
            for q, name in ((0.5, "p50"), (0.95, "p95"))
        ],
        unit="s",
    )


def screenshots_by_outcome() -> PanelBuilder:
    return timeseries_panel(
        "Screenshots by outcome",
        "Screenshot requests per second by source and outcome (success, cached, error).",
        [
            (
                rate_by("session_exporter_screenshots_total", "source, outcome"),
                "{{source}} {{outcome}}",
            )
        ],
        unit="reqps",
        bars=True,
        width=8,
    )


def screenshot_success_ratio() -> PanelBuilder:
    return timeseries_panel(
        "Screenshot success ratio",
        "Share of screenshot requests that produced an image (captured or cached).",
        [
            (
                ratio(
                    rate_by("session_exporter_screenshots_total", "source", NOT_ERROR),
                    rate_by("session_exporter_screenshots_total", "source"),
                ),
                "{{source}}",
            )
        ],
        unit="percentunit",
        thresholds=steps(("red", None), ("yellow", 0.95), ("green", 0.99)),
        maximum=1,
        width=8,
    )


def screenshot_size() -> PanelBuilder:
    return timeseries_panel(
        "Screenshot size",
        "Average and p95 size of captured screenshots by source.",
        [
            (
                ratio(
                    rate_by("session_exporter_screenshot_size_bytes_sum", "source"),
                    rate_by("session_exporter_screenshot_size_bytes_count", "source"),
                ),
                "{{source}} average",
            ),
            (
                quantile_by(0.95, "session_exporter_screenshot_size_bytes", "source"),
                "{{source}} p95",
            ),
        ],
        unit="bytes",
        width=8,
    )
