"""The monitoring mixin: the committed rules, dashboards and Kubernetes wrappers are what the
committed config generates; another job name regenerates all of them consistently; every rule
selector carries the job matcher; every latency objective is a histogram bucket boundary."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import promql_parser as promql
import pytest
import yaml
from prometheus_client import CollectorRegistry

from exporter.core.metrics import HTTP_BUCKETS, LATENCY_BUCKETS
from exporter.core.settings import parse_settings
from exporter.web import create_app
from exporter.web.request_metrics import SERVER_ERRORS
from mixin import ROOT, render_all
from mixin.__main__ import main as mixin_main
from mixin.config import DEFAULTS, load
from mixin.durations import duration, seconds, spoken
from mixin.rules import render_alerts
from tests.support.redis_server import missing_dependency
from tests.unit.test_dashboard_lint import expand, walk

DEFAULT_JOB = 'job="session-exporter"'


def rules_of(text: str) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]


def test_committed_files_are_what_the_config_generates() -> None:
    for path, text in render_all(load()).items():
        committed = (ROOT / path).read_text(encoding="utf-8")
        assert committed == text, f"{path} is stale: run `make mixin`"


def test_check_mode_reports_drift(tmp_path: Path) -> None:
    assert mixin_main(["--check"]) == 0
    assert mixin_main(["--check", "--output", str(tmp_path)]) == 1  # nothing written there


def test_every_rule_selector_carries_the_job_matcher() -> None:
    for path in ("prometheus/rules/recording.yml", "prometheus/rules/alerts.yml"):
        for rule in rules_of((ROOT / path).read_text(encoding="utf-8")):
            selectors = [
                node
                for node, _ in walk(promql.parse(rule["expr"]))
                if isinstance(node, promql.VectorSelector)
            ]
            if not selectors:  # a constant (an SLO's objective): the job is set as a label
                assert (
                    rule["expr"].startswith("vector(")
                    and rule["labels"]["job"] == "session-exporter"
                )
                continue
            for selector in selectors:
                job = [m for m in selector.matchers.matchers if m.name == "job"]
                assert [(m.op, m.value) for m in job] == [
                    (promql.MatchOp.Equal, "session-exporter")
                ]


def test_another_job_regenerates_everything(tmp_path: Path) -> None:
    assert mixin_main(["--job", "sessions-prod", "--output", str(tmp_path)]) == 0
    written = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert written == set(render_all(load()))
    for path in written:
        text = (tmp_path / path).read_text(encoding="utf-8")
        assert DEFAULT_JOB not in text and '\\"session-exporter\\"' not in text, path
    alerts = (tmp_path / "prometheus/rules/alerts.yml").read_text(encoding="utf-8")
    assert 'up{job="sessions-prod"} == 0' in alerts
    dashboard = json.loads(
        (tmp_path / "grafana/dashboards/session-management.json").read_text(encoding="utf-8")
    )
    job = next(v for v in dashboard["templating"]["list"] if v["name"] == "job")
    assert job["current"]["value"] == ["sessions-prod"]
    rule = yaml.safe_load((tmp_path / "deploy/kubernetes/base/prometheusrule.yaml").read_text())
    recording = (tmp_path / "prometheus/rules/recording.yml").read_text(encoding="utf-8")
    groups = yaml.safe_load(recording)["groups"] + yaml.safe_load(alerts)["groups"]
    assert groups == rule["spec"]["groups"]
    assert 'sloth_id="sessions-prod-session-availability"' in alerts


def test_another_job_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        missing_dependency("promtool", "install the Debian package prometheus")
    assert promtool is not None
    mixin_main(
        [
            "--job",
            "other",
            "--runbook-url",
            "https://wiki.example.com/rb",
            "--output",
            str(tmp_path),
        ]
    )
    files = sorted(str(p) for p in (tmp_path / "prometheus/rules").glob("*.yml"))
    result = subprocess.run(
        [promtool, "check", "rules", *files], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = rules_of(Path(files[0]).read_text(encoding="utf-8"))
    assert all(
        r["annotations"]["runbook_url"].startswith("https://wiki.example.com/rb#") for r in alerts
    )


def test_latency_levels_are_bucket_boundaries() -> None:
    """So the dashboard's p95 colours are exact: a quantile interpolated inside a bucket is not."""
    for manager, levels in load().latency_seconds.items():
        assert levels.high in LATENCY_BUCKETS and levels.critical in LATENCY_BUCKETS, manager
    assert load().latency_seconds["figma"].high == 2.0
    assert load().latency_seconds["session"].high == 0.1


def test_slo_latencies_are_http_bucket_boundaries() -> None:
    """A latency SLI counts the requests in the bucket at the objective: it must be one."""
    latencies = [s.latency_seconds for s in load().slo.objectives if s.latency_seconds is not None]
    assert latencies and all(latency in HTTP_BUCKETS for latency in latencies)


def test_the_figma_routes_have_slos_of_their_own() -> None:
    objectives = {slo.slug: slo for slo in load().slo.objectives}
    assert set(objectives) == {
        "session-availability",
        "session-latency",
        "figma-availability",
        "figma-latency",
    }
    assert objectives["session-latency"].latency_seconds == 0.25
    assert objectives["figma-latency"].latency_seconds == 5.0
    assert all(r.startswith("/api/figma/") for r in objectives["figma-availability"].routes)
    assert all(r.startswith("/api/sessions") for r in objectives["session-availability"].routes)


def test_every_slo_route_is_served_and_counted_from_zero() -> None:
    """The SLIs select real route templates, whose server-error series exist from start-up (a
    series born with a value loses it to rate())."""
    registry = CollectorRegistry()
    app = create_app(parse_settings({}), registry=registry)
    served = {
        (route.resource.canonical, route.method)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    for slo in load().slo.objectives:
        for route in slo.routes:
            methods = [method for path, method in served if path == route]
            assert methods, f"{slo.slug}: {route} is no route of the app"
            for method, status in itertools.product(methods, SERVER_ERRORS):
                labels = {"route": route, "method": method, "status": str(status)}
                value = registry.get_sample_value("session_exporter_http_requests_total", labels)
                assert value == 0, labels


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"job": 'a"b'}, "job"),
        ({"runbook_url": "docs/runbook.md"}, "runbook_url"),
        ({"runbook_url": "https://x/runbook.md#top"}, "runbook_url"),
    ],
)
def test_bad_settings_are_refused(override: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load(job=override.get("job"), runbook_url=override.get("runbook_url"))


def test_dashboard_variables_expand_in_the_rules_helpers() -> None:
    assert expand('rate(x{job=~"$job"}[$__rate_interval])').endswith("[7777777ms])")


def test_the_drill_profile_divides_every_window_and_for_by_its_scale() -> None:
    """A minute of the shipped rules is a second of a drill; only the session latency objective
    changes besides (a CI machine is not a production one)."""
    shipped, drill = load(), load(profile="drill")
    assert drill.time_scale == 60

    def scale(text: str) -> float:
        return seconds(text) / 60

    assert [seconds(w) for w in drill.slo.windows] == [scale(w) for w in shipped.slo.windows]
    assert seconds(drill.slo.period) == scale(shipped.slo.period)
    for name, setting in shipped.alerts.items():
        expected = scale(setting.hold) and max(scale(setting.hold), seconds(drill.min_for))
        assert seconds(drill.alert(name).hold) == pytest.approx(expected, abs=0.001), name
        assert drill.alert(name).severity == setting.severity
    assert drill.alert("Down").hold == "3s" and drill.alert("CacheHitRatioLow").hold == "15s"
    for ours, theirs in zip(drill.slo.burn_alerts, shipped.slo.burn_alerts, strict=True):
        for pair, shipped_pair in zip(ours.windows, theirs.windows, strict=True):
            assert pair.burn_rate == shipped_pair.burn_rate
            assert seconds(pair.long) == scale(shipped_pair.long)
    changed = [
        s for s, t in zip(drill.slo.objectives, shipped.slo.objectives, strict=True) if s != t
    ]
    assert [(s.name, s.latency_seconds, s.objective) for s in changed] == [
        ("SessionLatency", 1.0, 0.99)  # for the CI machine: see mixin/profiles/drill.yml
    ]
    assert 'ratio_rate5s{job="session-exporter"' in render_alerts(drill)


def test_a_profile_is_never_written_over_the_committed_files(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        mixin_main(["--profile", "drill"])
    assert "--profile needs --output" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["alerts"]["Down"].update(severity="page"), "severity"),
        (lambda d: d["alerts"]["Down"].update({"for": "1 minute"}), "Prometheus duration"),
        (lambda d: d["alerts"].pop("SessionLatencyFastBurn"), "SessionLatencyFastBurn"),
        (lambda d: d["alerts"].update(Typo={"for": "1m", "severity": "warning"}), "Typo"),
        (lambda d: d["slo"]["burn_alerts"]["FastBurn"].update(reset_window="1m"), "recorded"),
        (lambda d: d["slo"]["objectives"]["SessionLatency"].update(objective=99), "ratio"),
        (lambda d: d["slo"].pop("period"), "period"),
    ],
)
def test_bad_slo_and_alert_settings_are_refused(tmp_path: Path, edit: Any, message: str) -> None:
    data = yaml.safe_load(DEFAULTS.read_text(encoding="utf-8"))
    edit(data)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        render_alerts(load(path))


def test_durations_are_read_and_written_as_prometheus_spells_them() -> None:
    assert seconds("1h12m") == 4320 and seconds("750ms") == 0.75
    assert [duration(v) for v in (4320, 0.75, 0, 30 * 86400)] == ["1h12m", "750ms", "0s", "30d"]
    assert spoken("1m30s") == "1 minute 30 seconds" and spoken("1h") == "1 hour"
    with pytest.raises(ValueError, match="Prometheus duration"):
        seconds("5 min")
