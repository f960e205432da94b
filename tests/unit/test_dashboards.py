"""Grafana dashboards as code: the committed JSON is what the code generates, every query uses
metrics the exporter really exposes (and together they show every family), and each panel carries
what an operator needs (datasource and instance variables, unit, legend, description)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from exporter.core.metrics import Metrics
from grafana.dashboards import DASHBOARDS, DIRECTORY, iter_panels, render_all
from grafana.dashboards.__main__ import main as dashboards_main
from tests.unit.test_dashboard_lint import FLEET_SERIES

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "prometheus" / "rules"
PROVISIONING = ROOT / "grafana" / "provisioning"
# Series Prometheus itself makes for each target: allowed in rules though not in the exposition.
SCRAPE_SERIES = {"up"}
EXPORTER_NAME = re.compile(r"(?<![\w:])session_exporter_[a-z0-9_]+(?![\w:])")
RECORDED_NAME = re.compile(r"(?<![\w:])[a-z_]+:[a-z0-9_]+:[a-z0-9_]+(?![\w:])")
BARE_NAME = re.compile(r"(?<![\w:.\"'$])([a-z_][a-z0-9_]*)\s*(?=\{|\[)")


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {name: json.loads((DIRECTORY / name).read_text(encoding="utf-8")) for name in DASHBOARDS}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return (panel for panel in iter_panels(dashboard) if panel["type"] != "row")


def dashboard_exprs() -> list[str]:
    return [
        target["expr"]
        for dashboard in load_dashboards().values()
        for panel in panels(dashboard)
        for target in panel["targets"]
    ]


def rules(kind: str) -> list[dict[str, Any]]:
    document = yaml.safe_load((RULES / f"{kind}.yml").read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
}


def exposition() -> dict[str, set[str]]:
    """Family name -> sample names of the exporter (suffixes such as _bucket/_total included).

    Names come from each family's type as well as its samples, so a labelled family with no
    series yet (HTTP requests before the first request) still counts as exported. The process_*
    and python_* families of prometheus_client's collectors are left out: generic process
    dashboards show them, they are not this exporter's own.
    """
    registry = CollectorRegistry()
    Metrics(registry)
    families: dict[str, set[str]] = {}
    for family in registry.collect():
        if not family.name.startswith("session_exporter_"):
            continue
        names = {family.name + suffix for suffix in SUFFIXES[family.type]}
        families[family.name] = names | {sample.name for sample in family.samples}
    return families


def test_committed_json_is_what_the_code_generates() -> None:
    rendered = render_all()
    assert set(rendered) == {p.name for p in DIRECTORY.glob("*.json")}
    for name, text in rendered.items():
        committed = (DIRECTORY / name).read_text(encoding="utf-8")
        assert committed == text, f"grafana/dashboards/{name} is stale: run `make dashboards`"


def test_check_mode_reports_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import grafana.dashboards.__main__ as cli

    assert dashboards_main(["--check"]) == 0
    for name, text in render_all().items():
        (tmp_path / name).write_text(text.replace('"Session Management"', '"Edited by hand"'))
    monkeypatch.setattr(cli, "DIRECTORY", tmp_path)
    assert dashboards_main(["--check"]) == 1


def test_every_metric_used_by_dashboards_and_rules_is_exported() -> None:
    samples = set().union(*exposition().values())
    recorded = {rule["record"] for rule in rules("recording")}
    exprs = dashboard_exprs() + [r["expr"] for r in rules("recording") + rules("alerts")]
    for expr in exprs:
        for name in EXPORTER_NAME.findall(expr):
            assert name in samples, f"{name} is not in the exporter's exposition ({expr})"
        for name in RECORDED_NAME.findall(expr):
            assert name in recorded, f"{name} is not a recording rule ({expr})"
        for name in BARE_NAME.findall(expr):
            assert name in samples | SCRAPE_SERIES, f"unknown metric {name} in {expr}"


def test_the_dashboard_shows_every_metric_family() -> None:
    """Directly, or through a recording rule the dashboard uses."""
    recording = {rule["record"]: rule["expr"] for rule in rules("recording")}
    exprs = dashboard_exprs()
    seen: set[str] = set()
    # Expand the recording rules the dashboard uses until nothing new appears (rules use rules).
    while new := {n for e in exprs for n in RECORDED_NAME.findall(e)} - seen:
        seen |= new
        exprs += [recording[name] for name in new]
    names = {name for expr in exprs for name in EXPORTER_NAME.findall(expr)}
    families = exposition()
    missing = [family for family, sample_names in families.items() if not sample_names & names]
    assert not missing, f"metric families on no panel: {missing}"


def test_metric_name_check_can_fail() -> None:
    samples = set().union(*exposition().values())
    assert "session_exporter_cache_requests_total" in samples
    assert "session_exporter_operation_duration_seconds_bucket" in samples
    assert "session_exporter_cache_requests" not in samples  # the family name is not a sample
    assert BARE_NAME.findall('rate(foo_total{a="b"}[5m]) / bar{x="y"}') == ["foo_total", "bar"]


def test_dashboards_use_datasource_and_instance_variables_never_inputs() -> None:
    for name, dashboard in load_dashboards().items():
        assert "__inputs" not in dashboard and "__requires" not in dashboard, name
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        instance = variables["instance"]
        assert instance["type"] == "query" and instance["multi"] and instance["includeAll"]
        assert instance["datasource"]["uid"] == "${datasource}"
        # no import placeholders (${DS_PROMETHEUS}): only the dashboard's own variables
        text = json.dumps(dashboard)
        for variable in variables:
            text = text.replace("${" + variable + "}", "")
        assert "${" not in text, name


def test_every_panel_is_described_with_unit_legend_and_instance_filter() -> None:
    for dashboard in load_dashboards().values():
        ids = [panel["id"] for panel in iter_panels(dashboard)]
        assert len(ids) == len(set(ids)) and 0 not in ids
        for panel in panels(dashboard):
            title = panel["title"]
            assert panel["description"], title
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
            assert panel["fieldConfig"]["defaults"].get("unit"), title
            assert panel["targets"], title
            for target in panel["targets"]:
                assert target["refId"] and target["legendFormat"], title
                assert target["datasource"]["uid"] == "${datasource}", title
                selectors = re.findall(r"([\w:]*)\{([^}]*)\}", target["expr"])
                assert selectors, title
                for name, selector in selectors:
                    if "{{" in selector:
                        continue
                    assert 'job=~"$job"' in selector, f"{title}: {target['expr']}"
                    if not FLEET_SERIES.fullmatch(name):  # the SLOs are the fleet's
                        assert 'instance=~"$instance"' in selector, f"{title}: {target['expr']}"


def test_session_management_layout_follows_the_seed() -> None:
    dashboard = load_dashboards()["session-management.json"]
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == [
        "Overview",
        "SLOs",
        "Persistence",
        "Performance",
        "Cache",
        "Health",
        "Real-time",
        "Web server",
    ]
    by_title = {p["title"]: p for p in panels(dashboard)}
    health = by_title["Health score"]
    assert health["type"] == "gauge"
    steps = health["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 40, 60, 80]
    assert [s["color"] for s in steps] == ["red", "orange", "yellow", "green"]
    overview = ["Status", "Active sessions", "Operations / s"]
    judged = ["p95 latency", "Error ratio", "Cache hit ratio"]
    assert set(overview + judged) <= set(by_title)
    for title in ["Status", *judged]:  # colour-coded by thresholds or value mappings
        defaults = by_title[title]["fieldConfig"]["defaults"]
        assert defaults.get("mappings") or len(defaults["thresholds"]["steps"]) > 1, title
    latency = by_title["p95 latency"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert latency[1]["value"] == 0.1  # the slow threshold


def test_provisioning_points_at_the_dashboards_and_a_fixed_datasource() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (datasource,) = datasources["datasources"]
    assert datasource["type"] == "prometheus" and datasource["uid"] == "prometheus"
    dashboard = load_dashboards()["session-management.json"]
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
    assert variable["current"]["value"] == datasource["uid"]

    providers = yaml.safe_load(
        (PROVISIONING / "dashboards" / "session-metrics-exporter.yml").read_text()
    )
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def test_dashboard_links_open_real_exporter_routes() -> None:
    from urllib.parse import urlsplit

    from exporter.core.settings import parse_settings
    from exporter.web import create_app

    app = create_app(parse_settings({}), registry=CollectorRegistry())
    served = {
        route.resource.canonical
        for route in app.router.routes()
        if route.method == "GET" and route.resource is not None
    }
    links = load_dashboards()["session-management.json"]["links"]
    assert {link["title"] for link in links} >= {"Exporter", "Health check now"}
    for link in links:
        assert link["url"].startswith("${exporter_url}/"), link
        path = urlsplit(link["url"].removeprefix("${exporter_url}")).path
        assert path in served, f"{link['title']} opens {path}, which the exporter does not serve"


def test_the_slo_row_shows_sli_budget_burn_rates_and_burn_alerts() -> None:
    from mixin.config import load

    dashboard = load_dashboards()["session-management.json"]
    rows = [p for p in dashboard["panels"]]
    start = next(i for i, p in enumerate(rows) if p["type"] == "row" and p["title"] == "SLOs")
    end = next(i for i, p in enumerate(rows) if i > start and p["type"] == "row")
    slo_panels = {p["title"]: p for p in rows[start + 1 : end]}
    assert set(slo_panels) == {
        "Error budget remaining",
        "SLI against the objective",
        "Burn rate over 1h and 6h (FastBurn)",
        "Burn rate over 1d and 3d (SlowBurn)",
        "Burn-rate alerts",
    }
    exprs = {t: [q["expr"] for q in p["targets"]] for t, p in slo_panels.items()}
    assert exprs["Error budget remaining"] == [
        'slo:period_error_budget_remaining:ratio{job=~"$job"}'
    ]
    assert any("ALERTS{" in e and 'sloth_severity="page"' in e for e in exprs["Burn-rate alerts"])
    for tier in load().slo.burn_alerts:
        panel = next(p for t, p in slo_panels.items() if f"({tier.name})" in t)
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert sorted(s["value"] for s in steps[1:]) == sorted(w.burn_rate for w in tier.windows)
        for pair in tier.windows:
            assert any(f"ratio_rate{pair.long}" in q["expr"] for q in panel["targets"])
