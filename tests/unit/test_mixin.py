"""The monitoring mixin: the committed rules, dashboards and Kubernetes wrappers are what the
committed config generates; another job name regenerates all of them consistently; every rule
selector carries the job matcher; every latency objective is a histogram bucket boundary."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import promql_parser as promql
import pytest
import yaml

from exporter.metrics import LATENCY_BUCKETS
from mixin import ROOT, render_all
from mixin.__main__ import main as mixin_main
from mixin.config import load
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
            assert selectors, rule
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
    assert yaml.safe_load(alerts)["groups"][0] == rule["spec"]["groups"][2]


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


def test_latency_objectives_are_bucket_boundaries() -> None:
    """So `p95 > objective` is exact: a quantile interpolated inside a bucket is not."""
    for manager, levels in load().latency_seconds.items():
        assert levels.high in LATENCY_BUCKETS and levels.critical in LATENCY_BUCKETS, manager
    assert load().latency_seconds["figma"].high == 2.0
    assert load().latency_seconds["session"].high == 0.1


def test_the_figma_objective_is_its_own() -> None:
    alerts = {
        r["alert"]: r["expr"] for r in rules_of((ROOT / "prometheus/rules/alerts.yml").read_text())
    }
    high = alerts["SessionExporterOperationLatencyHigh"]
    assert 'manager="session"} > 0.1' in high and 'manager="figma"} > 2' in high
    critical = alerts["SessionExporterOperationLatencyCritical"]
    assert 'manager="session"} > 0.5' in critical and 'manager="figma"} > 5' in critical


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
        load(**override)


def test_dashboard_variables_expand_in_the_rules_helpers() -> None:
    assert expand('rate(x{job=~"$job"}[$__rate_interval])').endswith("[7777777ms])")
