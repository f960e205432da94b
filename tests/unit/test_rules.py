"""Prometheus configuration and rules: promtool checks them and runs their unit tests, and every
alert keeps the contract operators rely on (severity, summary, description, runbook, `for:`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mixin.config import load as load_config
from tests.support.redis_server import missing_dependency

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "prometheus"
RULE_FILES = (PROMETHEUS / "rules" / "recording.yml", PROMETHEUS / "rules" / "alerts.yml")
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
RUNBOOK = ROOT / "docs" / "runbook.md"
SEVERITIES = {"critical", "warning"}
ANNOTATIONS = {"summary", "description", "runbook_url"}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        missing_dependency("promtool", "install the Debian package prometheus (`make system-deps`)")
    assert path is not None
    return path


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alerts() -> Iterator[dict[str, Any]]:
    for group in load(PROMETHEUS / "rules" / "alerts.yml")["groups"]:
        yield from group["rules"]


def seconds(duration: str) -> int:
    """A Prometheus duration such as `1m30s` in seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+)([smh])", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


def anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the markdown headings."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_promtool_accepts_the_scrape_config_and_its_rule_files(promtool: str) -> None:
    result = run(promtool, "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout


def test_promtool_accepts_the_rules(promtool: str) -> None:
    result = run(promtool, "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass(promtool: str) -> None:
    assert {p.name for p in RULE_TESTS} >= {"alerts_test.yml", "recording_test.yml"}
    result = run(promtool, "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_rule_unit_tests_fail_when_an_alert_fires_one_interval_early(
    promtool: str, tmp_path: Path
) -> None:
    """The boundary tests bite: shorten every `for:` by 15 s and each alert's test must fail."""
    shutil.copytree(PROMETHEUS, tmp_path / "prometheus")
    alerts_file = tmp_path / "prometheus" / "rules" / "alerts.yml"
    document = load(alerts_file)
    for group in document["groups"]:
        for rule in group["rules"]:
            rule["for"] = f"{seconds(rule['for']) - 15}s"
    alerts_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    result = run(promtool, "test", "rules", "tests/alerts_test.yml", cwd=tmp_path / "prometheus")
    assert result.returncode != 0
    report = result.stdout + result.stderr
    for rule in alerts():
        assert f"alertname: {rule['alert']}," in report, rule["alert"]


def test_every_alert_follows_the_contract() -> None:
    runbook_anchors = anchors(RUNBOOK.read_text(encoding="utf-8"))
    names = []
    for rule in alerts():
        name = rule["alert"]
        names.append(name)
        assert re.fullmatch(r"SessionExporter(?:[A-Z][a-z0-9]*)+", name), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert set(annotations) == ANNOTATIONS, name
        assert "{{" not in annotations["summary"], f"{name}: summary must be static"
        assert "$value" in annotations["description"], f"{name}: description must carry the value"
        base, _, anchor = annotations["runbook_url"].partition("#")
        assert base == load_config().runbook_url, f"{name}: runbook_url not absolute from the base"
        assert base.startswith("https://") and base.endswith("/docs/runbook.md"), name
        assert anchor in runbook_anchors, f"{name}: #{anchor} is no section of docs/runbook.md"

        assert anchor == name.lower(), name
        assert seconds(rule["for"]) > 0, f"{name}: `for:` must be chosen, not left at 0"
    assert len(names) == len(set(names))


def test_required_alerts_exist() -> None:
    names = {rule["alert"] for rule in alerts()}
    assert names >= {
        "SessionExporterDown",
        "SessionExporterAbsent",
        "SessionExporterRedisUnreachable",
        "SessionExporterReplayBacklogHigh",
        "SessionExporterReplayDropping",
        "SessionExporterFigmaApiDown",
        "SessionExporterMcpServerDown",
        "SessionExporterOperationLatencyHigh",
        "SessionExporterOperationLatencyCritical",
        "SessionExporterErrorRatioHigh",
        "SessionExporterCacheHitRatioLow",
        "SessionExporterHealthDegraded",
        "SessionExporterHealthCritical",
        "SessionExporterSseClientsAtLimit",
    }


def test_upstream_down_alerts_only_fire_for_configured_services() -> None:
    for rule in alerts():
        if rule["alert"] in ("SessionExporterFigmaApiDown", "SessionExporterMcpServerDown"):
            assert "session_exporter_upstream_enabled" in rule["expr"], rule["alert"]


def test_every_alert_is_tested_at_its_for_boundary() -> None:
    """Silent one evaluation before `for:` has elapsed, firing with labels and annotations at it."""
    document = load(PROMETHEUS / "tests" / "alerts_test.yml")
    step = seconds(document["evaluation_interval"])
    firing: dict[str, set[int]] = {}
    silent: dict[str, set[int]] = {}
    for group in document["tests"]:
        for case in group.get("alert_rule_test", []):
            at = seconds(case["eval_time"])
            if case["exp_alerts"]:
                firing.setdefault(case["alertname"], set()).add(at)
                for alert in case["exp_alerts"]:
                    assert "severity" in alert["exp_labels"]
                    assert set(alert["exp_annotations"]) == ANNOTATIONS
            else:
                silent.setdefault(case["alertname"], set()).add(at)
    for rule in alerts():
        name, hold = rule["alert"], seconds(rule["for"])
        assert firing.get(name), f"{name} is never shown firing"
        boundaries = {at for at in firing[name] if at - step in silent.get(name, set())}
        assert boundaries, f"{name} has no silent evaluation just before it fires"
        # The condition starts at t=0 (gauges) or t=15s (the first rate): `for:` after that.
        assert boundaries & {hold, hold + step}, f"{name} does not fire exactly when `for:` expires"


def test_recording_rules_are_named_level_metric_operation() -> None:
    for group in load(PROMETHEUS / "rules" / "recording.yml")["groups"]:
        for rule in group["rules"]:
            level, metric, operation = rule["record"].split(":")
            assert re.fullmatch(r"[a-z]+(?:_[a-z]+)*", level), rule["record"]
            assert metric.startswith("session_exporter_"), rule["record"]
            assert re.fullmatch(r"(?:p\d\d_)?rate\d+m", operation), rule["record"]
