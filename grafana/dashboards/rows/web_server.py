"""The Web server row: connections and the web configuration (slow or greedy clients, a bad
reload)."""

from __future__ import annotations

from grafana.dashboards.panels import (
    SEL,
    PanelBuilder,
    rate_by,
    stat_panel,
    timeseries_panel,
    value_map,
)
from mixin.config import MixinConfig


def panels(c: MixinConfig) -> list[PanelBuilder]:
    return [
        http_connections(),
        http_connections_dropped(),
        web_configuration(),
    ]


def http_connections() -> PanelBuilder:
    return timeseries_panel(
        "HTTP connections",
        "Open connections per replica against the cap (--web-max-connections): at the cap "
        "the address holding the most gives one up.",
        [
            (f"session_exporter_http_connections{{{SEL}}}", "{{instance}} open"),
            (f"session_exporter_http_max_connections{{{SEL}}}", "{{instance}} cap"),
        ],
        unit="none",
        width=8,
    )


def http_connections_dropped() -> PanelBuilder:
    return timeseries_panel(
        "HTTP connections dropped",
        "Connections closed or refused per second, by reason: a request head or body too "
        "slow (header_timeout, body_timeout) or a client or the whole server at its cap.",
        [
            (
                rate_by("session_exporter_http_connections_dropped_total", "instance, reason"),
                "{{instance}} {{reason}}",
            )
        ],
        unit="ops",
        width=8,
    )


def web_configuration() -> PanelBuilder:
    return stat_panel(
        "Web configuration",
        "Whether the last reload of --web-config-file succeeded; a file that could not be "
        "read or validated leaves the last good one (TLS, logins) in force.",
        [(f"session_exporter_web_config_last_reload_successful{{{SEL}}}", "{{instance}}")],
        unit="none",
        mappings=value_map({0: ("last reload refused", "red"), 1: ("loaded", "green")}),
        width=8,
    )
