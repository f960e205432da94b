"""The Real-time row: the original page's live view, on the shortest windows Grafana's scrape
interval allows, over the last 15 minutes."""

from __future__ import annotations

from grafana.dashboards.panels import (
    RATE,
    SEL,
    PanelBuilder,
    rate_by,
    timeseries_panel,
)
from mixin.config import MixinConfig

LIVE = "15m"  # time range of the row's panels


def panels(c: MixinConfig) -> list[PanelBuilder]:
    return [
        live_operations(),
        session_activity(),
        live_active_sessions(),
        sse_clients(),
        events_by_type(),
        event_stream_failures(),
    ]


def live_operations() -> PanelBuilder:
    return timeseries_panel(
        "Operations / s (live)",
        "Operations per second per manager over the shortest reliable window.",
        [
            (
                rate_by("session_exporter_operation_duration_seconds_count", "manager"),
                "{{manager}}",
            )
        ],
        unit="ops",
        width=8,
        time_from=LIVE,
    )


def session_activity() -> PanelBuilder:
    return timeseries_panel(
        "Session activity",
        "Sessions created and read per second over the shortest reliable window, and stored"
        " sessions that could not be read (damaged, or another program's value under the key"
        " prefix), answered as unknown sessions, by cause.",
        [
            (
                rate_by("session_exporter_sessions_created_total", "instance"),
                "{{instance}} created",
            ),
            (
                rate_by("session_exporter_sessions_retrieved_total", "instance"),
                "{{instance}} read",
            ),
            (
                rate_by("session_exporter_sessions_unreadable_total", "cause"),
                "unreadable ({{cause}})",
            ),
        ],
        unit="ops",
        width=8,
        time_from=LIVE,
    )


def live_active_sessions() -> PanelBuilder:
    return timeseries_panel(
        "Active sessions",
        "Live sessions across replicas, as each replica reports it.",
        [(f"session_exporter_sessions_active{{{SEL}}}", "{{instance}}")],
        unit="short",
        width=8,
        time_from=LIVE,
    )


def sse_clients() -> PanelBuilder:
    return timeseries_panel(
        "SSE clients",
        "Connected Server-Sent Events clients per replica and the configured limit "
        "(--sse-max-clients); at the limit new streams are refused.",
        [
            (f"session_exporter_sse_clients{{{SEL}}}", "{{instance}} clients"),
            (f"session_exporter_sse_max_clients{{{SEL}}}", "{{instance}} limit"),
        ],
        unit="short",
        width=8,
        time_from=LIVE,
    )


def events_by_type() -> PanelBuilder:
    return timeseries_panel(
        "Events by type",
        "Events recorded in the event log per rate interval by type (failover, failback, slow "
        "operations, upstream changes, cache clears...). The SSE stream carries each one.",
        [
            (
                f"sum by (type) (increase(session_exporter_events_total{{{SEL}}}[{RATE}]))",
                "{{type}}",
            )
        ],
        unit="short",
        bars=True,
        width=8,
        time_from=LIVE,
    )


def event_stream_failures() -> PanelBuilder:
    return timeseries_panel(
        "Event stream failures",
        "Failed writes or reads of the shared Redis event stream per second; events then stay "
        "in this replica's memory only, so other replicas' streams miss them.",
        [(rate_by("session_exporter_event_stream_failures_total", "instance"), "{{instance}}")],
        unit="ops",
        bars=True,
        width=8,
        time_from=LIVE,
    )
