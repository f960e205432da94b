"""grafana/dashboard-linter's rules, applied to the generated dashboard JSON.

The linter is a Go tool that cannot be installed here, so its relevant rules are mirrored from
its source (github.com/grafana/dashboard-linter, commit 4d0844b40d49cbfd442916fc6c0c3c6fc81084e3,
lint/rule_template_datasource.go, rule_template_job.go (checkTemplate), rule_template_instance.go,
rule_template_on_time_change_reload.go, rule_panel_datasource.go, rule_target_job_instance.go,
target_utils.go (checkForMatcher), rule_target_rate_interval.go, rule_target_promql.go,
variables.go (expandVariables)). Warnings of the linter (a template's label) are errors here.
PromQL is parsed with promql-parser (Prometheus's grammar, in Rust), as the linter parses it
with Prometheus's own parser. One deviation: the linter substitutes `$__rate_interval` with the
magic duration 8869990787ms, which promql-parser rejects as too long, so a different magic
value stands in for it (any duration no panel would use by hand works the same way).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import promql_parser as promql
import pytest

from grafana.dashboards import DASHBOARDS, DIRECTORY, iter_panels

RATE_INTERVAL_MAGIC = timedelta(milliseconds=7_777_777)
RANGE_MAGIC = timedelta(milliseconds=6_666_666)
GLOBALS = {
    "__rate_interval": f"{int(RATE_INTERVAL_MAGIC.total_seconds() * 1000)}ms",
    "__range": f"{int(RANGE_MAGIC.total_seconds() * 1000)}ms",
    "__interval": "4867856611ms",
}
VARIABLE = re.compile(r"\$(\w+)|\$\{([^}]+)\}|\[\[([^\[\]]+)\]\]")
# rule_target_promql.go panelHasQueries: the panel types whose targets are linted.
QUERY_PANELS = {"singlestat", "gauge", "table-old", "stat", "state-timeline", "timeseries"}
# rule_panel_datasource.go: the panel types that must use the templated datasource. (Ours: all.)
DATASOURCE_PANELS = QUERY_PANELS | {"graph"}
# Series of the fleet, with no instance label (the linter's exclusions, as a .lint file would
# list them): the SLO recordings and the alerts of the SLOs row.
FLEET_SERIES = re.compile(r"slo:.+|ALERTS")


def dashboards() -> dict[str, dict[str, Any]]:
    return {name: json.loads((DIRECTORY / name).read_text(encoding="utf-8")) for name in DASHBOARDS}


def template(dashboard: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((t for t in dashboard["templating"]["list"] if t["name"] == name), None)


def expand(expr: str) -> str:
    """variables.go expandVariables: globals replaced outside double-quoted strings only."""
    parts = expr.split('"')
    for i in range(0, len(parts), 2):
        parts[i] = VARIABLE.sub(lambda m: _sample(m.group(m.lastindex or 1)), parts[i])
    return '"'.join(parts)


def _sample(name: str) -> str:
    return GLOBALS.get(name.split(":")[0], name)


def children(node: Any) -> list[Any]:
    if isinstance(node, promql.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, promql.AggregateExpr):
        return [n for n in (node.param, node.expr) if n is not None]
    if isinstance(node, promql.Call):
        return list(node.args)
    if isinstance(node, promql.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, promql.ParenExpr | promql.UnaryExpr | promql.SubqueryExpr):
        return [node.expr]
    return []


def walk(node: Any, parents: tuple[Any, ...] = ()) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    yield node, parents
    for child in children(node):
        yield from walk(child, (*parents, node))


def targets() -> Iterator[tuple[str, dict[str, Any], str]]:
    for name, dashboard in dashboards().items():
        for panel in iter_panels(dashboard):
            if panel["type"] in QUERY_PANELS:
                for target in panel.get("targets", []):
                    yield name, panel, target["expr"]


def check_template(dashboard: dict[str, Any], name: str) -> list[str]:
    """rule_template_job.go checkTemplate (shared by the job and instance rules)."""
    t = template(dashboard, name)
    if t is None:
        return [f"is missing the {name} template"]
    errors = []
    if t.get("datasource", {}).get("uid") not in ("$datasource", "${datasource}"):
        errors.append(f"{name} template should use datasource '$datasource'")
    if t["type"] != "query":
        errors.append(f"{name} template should be a Prometheus query")
    if t.get("label") != name.title():
        errors.append(f"{name} template should be labeled '{name.title()}'")
    if not t.get("multi"):
        errors.append(f"{name} template should be a multi select")
    if t.get("allValue") != ".+":
        errors.append(f"{name} template allValue should be '.+'")
    return errors


def check_matcher(selector: Any, name: str) -> str | None:
    """target_utils.go checkForMatcher: a `name=~"$name"` matcher, exactly."""
    result: str | None = f"{name} selector not found"
    for matcher in selector.matchers.matchers:
        if matcher.name != name:
            continue
        if matcher.op == promql.MatchOp.Re and matcher.value == f"${name}":
            return None
        result = f"{name} selector is {matcher.op} {matcher.value!r}, not =~ '${name}'"
    return result


def rate_interval_error(node: Any, parents: tuple[Any, ...]) -> str | None:
    """rule_target_rate_interval.go: (i)rate over a range other than $__rate_interval."""
    if not isinstance(node, promql.MatrixSelector) or node.range == RATE_INTERVAL_MAGIC:
        return None
    if not parents:
        return None
    parent = parents[-1]
    if not isinstance(parent, promql.Call):
        return "$__rate_interval used in non-rate function"
    if parent.func.name in ("rate", "irate"):
        return "should use $__rate_interval"
    return None


def test_template_datasource_rule() -> None:
    for name, dashboard in dashboards().items():
        sources = [t for t in dashboard["templating"]["list"] if t["type"] == "datasource"]
        assert sources, f"{name} does not have a templated data source"
        for source in sources:
            allowed = {f"{source['query'].lower()}_datasource"}
            labels = {f"{source['query'].title()} data source"}
            if len(sources) == 1:
                allowed.add("datasource")
                labels.add("Data source")
            assert source["name"] in allowed, name
            assert source.get("label") in labels, name


@pytest.mark.parametrize("variable", ["job", "instance"])
def test_template_job_and_instance_rules(variable: str) -> None:
    for name, dashboard in dashboards().items():
        assert check_template(dashboard, variable) == [], name


def test_template_on_time_change_reload_rule() -> None:
    for name, dashboard in dashboards().items():
        for t in dashboard["templating"]["list"]:
            if t["type"] == "query":
                assert t.get("refresh") == 2, f"{name}: {t['name']} must refresh on time change"


def test_panel_datasource_rule() -> None:
    for name, dashboard in dashboards().items():
        sources = {t["name"] for t in dashboard["templating"]["list"] if t["type"] == "datasource"}
        allowed = {f"${s}" for s in sources} | {f"${{{s}}}" for s in sources}
        for panel in iter_panels(dashboard):
            if panel["type"] in DATASOURCE_PANELS:
                assert panel["datasource"]["uid"] in allowed, f"{name}: {panel['title']}"


@pytest.mark.parametrize("label", ["job", "instance"])
def test_target_job_and_instance_rules(label: str) -> None:
    errors, checked = [], 0
    for _, panel, expr in targets():
        for node, _ in walk(promql.parse(expand(expr))):
            if isinstance(node, promql.VectorSelector):
                checked += 1
                if label == "instance" and FLEET_SERIES.fullmatch(node.name or ""):
                    continue
                if error := check_matcher(node, label):
                    errors.append(f"{panel['title']}: {error}: {expr}")
    assert checked > len(list(targets())) > 60  # every query has at least one selector
    assert not errors, "\n".join(errors)


def test_target_rate_interval_rule() -> None:
    errors = []
    for _, panel, expr in targets():
        for node, parents in walk(promql.parse(expand(expr))):
            if error := rate_interval_error(node, parents):
                errors.append(f"{panel['title']}: {error}: {expr}")
    assert not errors, "\n".join(errors)


def test_no_fixed_ranges_at_all() -> None:
    """Stricter than the linter: increase() too, so no panel hides a fixed [1m] or [5m]."""
    allowed = {RATE_INTERVAL_MAGIC, RANGE_MAGIC}
    for _, panel, expr in targets():
        for node, _ in walk(promql.parse(expand(expr))):
            if isinstance(node, promql.MatrixSelector):
                assert node.range in allowed, f"{panel['title']}: fixed range in {expr}"


def test_the_rules_catch_what_the_issue_found() -> None:
    """The mirrored rules fail the queries the linter failed before (no job matcher, [1m])."""
    old = promql.parse(expand('sum(rate(x_total{instance=~"$instance"}[1m]))'))
    found = [rate_interval_error(n, p) for n, p in walk(old)]
    assert "should use $__rate_interval" in found
    selectors = [n for n, _ in walk(old) if isinstance(n, promql.VectorSelector)]
    assert check_matcher(selectors[0], "job") == "job selector not found"
    assert check_matcher(selectors[0], "instance") is None
    increase = promql.parse(expand('increase(x_total{job=~"$job"}[$__rate_interval])'))
    assert not [e for n, p in walk(increase) if (e := rate_interval_error(n, p))]
    assert check_template({"templating": {"list": []}}, "job") == ["is missing the job template"]
