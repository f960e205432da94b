"""Prometheus configuration and rules: promtool checks them and runs their unit tests, and every
alert keeps the contract operators rely on (severity, summary, description, runbook, `for:`).

The promtool unit tests (prometheus/tests/) pin every alert at its boundary: a cause alert at its
`for:`, a burn-rate alert at its burn rate, and the SLO pages against issue 29's "done when"."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
BOUNDARY_TESTS = ("alerts_test.yml", "slo_test.yml")  # at the shipped 15 s evaluation interval
# Sloth's recording rules (github.com/slok/sloth, its generated rules), which SLO dashboards read.
SLOTH_RECORDS = {
    "slo:objective:ratio",
    "slo:error_budget:ratio",
    "slo:time_period:days",
    "slo:current_burn_rate:ratio",
    "slo:period_burn_rate:ratio",
    "slo:period_error_budget_remaining:ratio",
    "sloth_slo_info",
}
SLOTH_LABELS = {"sloth_id", "sloth_service", "sloth_slo"}


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


def is_burn_rate(rule: dict[str, Any]) -> bool:
    return "sloth_severity" in rule["labels"]


def run_promtool_tests(promtool: str, files: list[Path], cwd: Path) -> list[str]:
    """`promtool test rules` on each file, in parallel (each takes seconds); the reports."""
    with ThreadPoolExecutor(max_workers=len(files)) as pool:
        results = pool.map(lambda f: run(promtool, "test", "rules", str(f), cwd=cwd), files)
        return [r.stdout + r.stderr + f"\nexit {r.returncode}" for r in results]


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
    assert {p.name for p in RULE_TESTS} >= {
        "alerts_test.yml",
        "recording_test.yml",
        "slo_test.yml",
        "slo_history_test.yml",
    }
    for report in run_promtool_tests(promtool, RULE_TESTS, ROOT):
        assert report.endswith("exit 0") and report.count("SUCCESS") == 1, report


def _earlier(rule: dict[str, Any]) -> None:
    """A cause alert's `for:` 15 s shorter; a burn-rate alert's thresholds 6 % lower."""
    if is_burn_rate(rule):
        rule["expr"] = re.sub(
            r"(/ [0-9.e-]+ > )([0-9.]+)",
            lambda m: f"{m.group(1)}{float(m.group(2)) * 0.94:g}",
            rule["expr"],
        )
    else:
        rule["for"] = f"{seconds(rule['for']) - 15}s"


def test_rule_unit_tests_fail_when_an_alert_fires_one_interval_early(
    promtool: str, tmp_path: Path
) -> None:
    """The boundary tests bite: shorten every `for:` by 15 s, lower every burn rate by 6 % (under
    the ladder's points just below each one), and each alert's test must fail."""
    shutil.copytree(PROMETHEUS, tmp_path / "prometheus")
    alerts_file = tmp_path / "prometheus" / "rules" / "alerts.yml"
    document = load(alerts_file)
    for group in document["groups"]:
        for rule in group["rules"]:
            _earlier(rule)
    alerts_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    # Of the SLO tests, the burn-rate ladder is what pins the boundaries (the rest takes seconds).
    slo_tests = tmp_path / "prometheus" / "tests" / "slo_test.yml"
    ladder = load(slo_tests)
    ladder["tests"] = [t for t in ladder["tests"] if "burning its budget" in t["name"]]
    slo_tests.write_text(yaml.safe_dump(ladder, sort_keys=False), encoding="utf-8")
    tests = [tmp_path / "prometheus" / "tests" / name for name in BOUNDARY_TESTS]
    reports = run_promtool_tests(promtool, tests, tmp_path / "prometheus")
    assert all(not report.endswith("exit 0") for report in reports)
    report = "".join(reports)
    for rule in alerts():
        name = rule["alert"]
        assert f"alertname: {name}," in report or f'alertname="{name}"' in report, name


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
        # A burn-rate alert's windows are its persistence (and a `for:` would let a page start
        # after the incident ended); every other alert holds on purpose.
        assert is_burn_rate(rule) or seconds(rule["for"]) > 0, f"{name}: `for:` left at 0"
    # The two window pairs of a burn-rate alert share its name, told apart by `long`.
    pairs = [(r["alert"], r["labels"].get("long")) for r in alerts()]
    assert len(pairs) == len(set(pairs))


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
        "SessionExporterMemoryTierFull",
        "SessionExporterCacheHitRatioLow",
        "SessionExporterSseClientsAtLimit",
        *(
            f"SessionExporter{slo}{speed}Burn"
            for slo in (
                "SessionAvailability",
                "SessionLatency",
                "FigmaAvailability",
                "FigmaLatency",
            )
            for speed in ("Fast", "Slow")
        ),
    }


def test_the_health_score_pages_no_one() -> None:
    """It repeats the cause alerts and lingers (a window of the last 100 operations): issue 29."""
    for rule in alerts():
        assert "health" not in rule["expr"], rule["alert"]


def test_pages_follow_the_session_slos_and_the_causes_no_slo_can_see() -> None:
    pages = {r["alert"] for r in alerts() if r["labels"]["severity"] == "critical"}
    assert pages == {
        "SessionExporterDown",
        "SessionExporterAbsent",
        "SessionExporterRedisUnreachable",
        "SessionExporterRedisRefusingWrites",
        "SessionExporterReplayDropping",
        "SessionExporterSessionAvailabilityFastBurn",
        "SessionExporterSessionLatencyFastBurn",
    }


def test_upstream_down_alerts_only_fire_for_configured_services() -> None:
    for rule in alerts():
        if rule["alert"] in ("SessionExporterFigmaApiDown", "SessionExporterMcpServerDown"):
            assert "session_exporter_upstream_enabled" in rule["expr"], rule["alert"]


def test_every_alert_is_tested_at_its_for_boundary() -> None:
    """Silent one evaluation before `for:` has elapsed, firing with labels and annotations at it."""
    documents = [load(PROMETHEUS / "tests" / name) for name in BOUNDARY_TESTS]
    (step,) = {seconds(document["evaluation_interval"]) for document in documents}
    firing: dict[str, set[int]] = {}
    silent: dict[str, set[int]] = {}
    for group in (test for document in documents for test in document["tests"]):
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
    """Or as Sloth names its SLO rules, so that SLO dashboards made for Sloth read ours."""
    for group in load(PROMETHEUS / "rules" / "recording.yml")["groups"]:
        for rule in group["rules"]:
            if rule["record"] in SLOTH_RECORDS or rule["record"].startswith("slo:sli_error:"):
                assert re.fullmatch(r"slo:sli_error:ratio_rate\d+[mhd]", rule["record"]) or (
                    rule["record"] in SLOTH_RECORDS
                )
                assert set(rule["labels"]) >= SLOTH_LABELS, rule
                continue
            level, metric, operation = rule["record"].split(":")
            assert re.fullmatch(r"[a-z]+(?:_[a-z]+)*", level), rule["record"]
            assert metric.startswith("session_exporter_"), rule["record"]
            assert re.fullmatch(r"(?:p\d\d_)?rate\d+m", operation), rule["record"]
