"""The Session Management dashboard: the original system's Session Management page as provisioned
Grafana panels (the README's "Where it comes from": this exporter rebuilds a JavaScript system
whose page had metric cards, a circular health score and four analytics tabs).

Rows, top to bottom (`ROWS`, one module each in `rows/`): an overview (the original page's
colour-coded metric cards and circular health score), the service-level objectives (budget, SLI,
burn rates, burn-rate alerts), persistence indicators (Redis, memory fallback, replay, memory
tier, per-manager health), then the original page's four analytics tabs: Performance, Cache,
Health and Real-time, and the web server. Together they show every metric family the exporter
exposes; `tests/unit/test_dashboards.py` checks that none is missing.
"""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as dm

from grafana.dashboards.panels import DATASOURCE, PanelBuilder
from grafana.dashboards.rows import (
    cache,
    health,
    overview,
    performance,
    persistence,
    realtime,
    slos,
    web_server,
)
from mixin.config import MixinConfig
from mixin.config import load as load_config

UID = "session-management"
TITLE = "Session Management"
ROWS: tuple[tuple[str, Callable[[MixinConfig], list[PanelBuilder]]], ...] = (
    ("Overview", overview.panels),
    ("SLOs", slos.panels),
    ("Persistence", persistence.panels),
    ("Performance", performance.panels),
    ("Cache", cache.panels),
    ("Health", health.panels),
    ("Real-time", realtime.panels),
    ("Web server", web_server.panels),
)

EXPORTER_URL = "http://127.0.0.1:9464"  # the compose stack's published port
# The seed's interactive controls: Grafana refreshes every 5 s; these open the exporter itself.
# (Clearing the cache is a POST with the admin token: the landing page shows the command.)
EXPORTER_LINKS = (
    ("Exporter", "/", "the landing page: version, health, every endpoint"),
    ("Health check now", "/api/session-metrics/health-check?refresh=true", "run the checks now"),
    ("Performance", "/api/session-metrics/performance", "window percentiles, slow operations"),
    ("Cache stats", "/api/session-metrics/cache-stats", "hit rates and efficiency class"),
    ("Persistence", "/api/session-metrics/persistence", "Redis, replay journal, memory tier"),
)


def exporter_links() -> list[db.DashboardLink]:
    return [
        db.DashboardLink(title)
        .type(dm.DashboardLinkType.LINK)
        .url("${exporter_url}" + path)
        .tooltip(tooltip)
        .icon("external link")
        .target_blank(True)
        .as_dropdown(False)
        .include_vars(False)
        .keep_time(False)
        .tags([])
        for title, path, tooltip in EXPORTER_LINKS
    ]


def variables(job: str) -> list[Builder[dm.VariableModel]]:
    """The data source, the job (`job` by default) and instances to show, the exporter's URL."""
    return [
        db.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(dm.VariableOption(text="Prometheus", value="prometheus")),
        _scrape_target_variable(
            "job",
            "Prometheus jobs scraping the exporter; each is one stack.",
            "label_values(session_exporter_build_info, job)",
            dm.VariableOption(text=[job], value=[job]),
        ),
        _scrape_target_variable(
            "instance",
            "Exporter replicas to show; All aggregates the fleet.",
            'label_values(session_exporter_build_info{job=~"$job"}, instance)',
            dm.VariableOption(text=["All"], value=["$__all"]),
        ),
        db.TextBoxVariable("exporter_url")
        .label("Exporter URL")
        .description("Where the links above open the exporter's own pages and JSON API.")
        .default_value(EXPORTER_URL),
    ]


def _scrape_target_variable(
    name: str, description: str, query: str, current: dm.VariableOption
) -> db.QueryVariable:
    """A multi-select of scraped targets' label values; All matches any (`.+`)."""
    return (
        db.QueryVariable(name)
        .label(name.capitalize())
        .description(description)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.NATURAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".+")
        .current(current)
    )


def build(config: MixinConfig | None = None) -> db.Dashboard:
    config = config or load_config()
    dashboard = (
        db.Dashboard(TITLE)
        .uid(UID)
        .description(
            "Sessions, caches, upstreams and health of session-metrics-exporter: the seed's "
            "Session Management section with its Performance, Cache, Health and Real-time tabs."
        )
        .tags(["session-metrics-exporter", "sessions", "figma"])
        .refresh("5s")  # the seed's real-time update interval
        .time("now-1h", "now")
        .timezone("browser")
        .readonly()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
    )
    for variable in variables(config.job):
        dashboard = dashboard.with_variable(variable)
    for link in exporter_links():
        dashboard = dashboard.link(link)
    for title, panels in ROWS:
        dashboard = dashboard.with_row(db.Row(title))
        for panel in panels(config):
            dashboard = dashboard.with_panel(panel)
    return dashboard
