"""End to end: a real Prometheus scrapes a real exporter that is driven with traffic, then every
dashboard panel query and every recording rule returns series through Prometheus's HTTP API.

The exporter runs in this process (create_app on a real TCP port) against the shared
redis-server, the Figma API double and a real MCP server. The traffic covers what the panels show:
sessions (created, read, replaced, deleted, unknown), a Redis outage (SIGKILL, fallback, restart,
replay), Figma files/nodes with a 429, screenshots through the API and MCP, an SSE client and a
cache clear. Prometheus scrapes every second and evaluates the project's rules every second.

Panel queries are run as Grafana would run them with "All" jobs and instances selected: `$job`
and `$instance` become the variables' allValue `.+`, `$__rate_interval` becomes 5s (Grafana's
value is at least four scrape intervals; the scrape interval here is 1 s) and `$__range` 60s.

Last, an idle replica (memory only, no traffic at all) is scraped alone, and every panel query
over it returns numbers or no series: never NaN (0 / 0, a quantile over no operations).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.core.settings import parse_settings
from exporter.web import create_app
from grafana.dashboards import DASHBOARDS, DIRECTORY, iter_panels
from tests.support.figma_double import DEFAULT_TOKEN, Fault, FigmaDouble
from tests.support.mcp_server import McpServerProcess
from tests.support.prometheus_server import RULES, PrometheusServer, start_prometheus
from tests.support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.slow

SUBSTITUTIONS = {"$job": ".+", "$instance": ".+", "$__rate_interval": "5s", "$__range": "60s"}
FILE_KEY = "e2eFileKey"
SETTINGS = {
    "snapshot_interval": 0.2,
    "health_interval": 0.3,
    "probe_interval": 0.3,
    "redis_timeout": 0.25,
    "redis_retry_interval": 0.2,
    "figma_timeout": 2.0,
    "mcp_timeout": 5.0,
}


@dataclass
class Scenario:
    """What the traffic phase left behind: the time window and the exporter's address."""

    prometheus: PrometheusServer
    start: float
    end: float
    target: str
    timings: dict[str, float] = field(default_factory=dict)

    def range(self, expr: str) -> list[dict[str, Any]]:
        # Steps end exactly at `end`, so the last scrape's effect is always evaluated.
        start = self.end - math.ceil(self.end - self.start)
        return self.prometheus.query_range(expr, start, self.end, step=1.0)


def panel_queries(**values: str) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL with the dashboard variables substituted) of every dashboard panel."""
    substitutions = {**SUBSTITUTIONS, **{f"${name}": value for name, value in values.items()}}
    for name in DASHBOARDS:
        dashboard = json.loads((DIRECTORY / name).read_text(encoding="utf-8"))
        for panel in iter_panels(dashboard):
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in substitutions.items():
                    expr = expr.replace(variable, value)
                assert "$" not in expr, f"unsubstituted variable in {panel['title']}: {expr}"
                yield panel["title"], expr


def recording_rules() -> list[str]:
    document = yaml.safe_load((RULES / "recording.yml").read_text(encoding="utf-8"))
    return [rule["record"] for group in document["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    """One Prometheus for the module (it needs seconds to serve its first sample)."""
    server = start_prometheus()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def scenario(
    prometheus: PrometheusServer, redis_server: RedisServer
) -> AsyncIterator[Scenario]:
    await asyncio.to_thread(_fresh_redis, redis_server)
    figma = await FigmaDouble().start()
    # The remote server's tools take fileKey, so its screenshots are cached (the desktop's not).
    mcp = await asyncio.to_thread(McpServerProcess(remote=True).start)
    settings = parse_settings(
        {
            **SETTINGS,
            "redis_url": redis_server.url,
            "figma_api_url": figma.url,
            "figma_token": DEFAULT_TOKEN,
            "mcp_url": mcp.url,
        }
    )
    runner = web.AppRunner(create_app(settings, CollectorRegistry()), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    target = f"127.0.0.1:{port}"
    try:
        started = time.monotonic()
        prometheus.set_targets([target])
        await asyncio.to_thread(prometheus.wait_for_target_up)
        timings = {"first_scrape_s": time.monotonic() - started}
        start = time.time()
        async with aiohttp.ClientSession(f"http://{target}") as http:
            await _drive(http, figma, prometheus, redis_server, timings)
        # Until a scrape after the traffic is stored and rules have seen the last counters.
        done = time.time()
        await _until(prometheus, f'timestamp(up{{job="session-exporter"}}) > {done + 1:.3f}')
        await _until(prometheus, "instance_manager:session_exporter_cache_hits:rate5m > 0")
        timings["traffic_s"] = done - start
        yield Scenario(prometheus, start, time.time(), target, timings)
    finally:
        prometheus.set_targets([])
        await runner.cleanup()
        await figma.close()
        await asyncio.to_thread(mcp.stop)
        await asyncio.to_thread(_running_redis, redis_server)


def _fresh_redis(redis_server: RedisServer) -> None:
    _running_redis(redis_server)
    client = redis_server.client()
    client.flushall()
    client.close()


def _running_redis(redis_server: RedisServer) -> None:
    if redis_server.process and redis_server.process.poll() is None:
        redis_server.resume()
    else:
        redis_server.start()


async def _until(prometheus: PrometheusServer, expr: str, timeout: float = 30.0) -> float:
    started = time.monotonic()
    await asyncio.to_thread(prometheus.wait_for, expr, timeout)
    return time.monotonic() - started


async def _json(http: aiohttp.ClientSession, method: str, path: str, status: int, **kw: Any) -> Any:
    async with http.request(method, path, **kw) as response:
        body = await response.read()
        assert response.status == status, (method, path, response.status, body[:300])
        return json.loads(body) if body else None


async def _drive(
    http: aiohttp.ClientSession,
    figma: FigmaDouble,
    prometheus: PrometheusServer,
    redis_server: RedisServer,
    timings: dict[str, float],
) -> None:
    ids = await _sessions(http)
    await _figma(http, figma)
    await _sse_client(http, prometheus)
    await _json(http, "POST", "/api/session-metrics/cache/clear?scope=all", 200)
    written = await _redis_outage(http, prometheus, redis_server, ids, timings)
    # The test Redis keeps nothing across SIGKILL: only the replayed writes exist after failback.
    for session_id in written * 2:
        await _json(http, "GET", f"/api/sessions/{session_id}", 200)


async def _sessions(http: aiohttp.ClientSession) -> list[str]:
    ids = []
    for n in range(20):
        body = await _json(http, "POST", "/api/sessions", 201, json={"data": {"user": n}})
        ids.append(body["id"])
    for session_id in ids * 2:
        await _json(http, "GET", f"/api/sessions/{session_id}", 200)
    for session_id in ids[:5]:
        await _json(
            http, "PUT", f"/api/sessions/{session_id}", 200, json={"data": {"edited": True}}
        )
    for session_id in ids[-3:]:
        await _json(http, "DELETE", f"/api/sessions/{session_id}", 204)
        await _json(http, "GET", f"/api/sessions/{session_id}", 404)
    await _json(http, "POST", "/api/sessions", 201, json={"data": {}, "ttl_seconds": 1})
    return ids[:-3]


async def _figma(http: aiohttp.ClientSession, figma: FigmaDouble) -> None:
    figma.fail("files", Fault("429", retry_after=0.05))  # answered after one retry
    for _ in range(2):  # a miss, then a cache hit
        await _json(http, "GET", f"/api/figma/files/{FILE_KEY}", 200)
        await _json(http, "GET", f"/api/figma/files/{FILE_KEY}/nodes?ids=1:2,1:3", 200)
        for source in ("api", "mcp"):
            shot = {"file_key": FILE_KEY, "node_id": "1:2", "source": source, "format": "png"}
            await _json(http, "POST", "/api/figma/screenshots", 200, json=shot)
    assert figma.requests["files"] >= 2


async def _sse_client(http: aiohttp.ClientSession, prometheus: PrometheusServer) -> None:
    async with http.get("/api/session-metrics/stream") as stream:
        assert stream.status == 200
        await asyncio.wait_for(stream.content.readline(), 10)
        await _until(prometheus, "session_exporter_sse_clients >= 1")


async def _redis_outage(
    http: aiohttp.ClientSession,
    prometheus: PrometheusServer,
    redis_server: RedisServer,
    ids: list[str],
    timings: dict[str, float],
) -> list[str]:
    await asyncio.to_thread(redis_server.kill)
    written = []
    try:
        for n in range(5):  # written to memory only, journalled for replay
            body = await _json(http, "POST", "/api/sessions", 201, json={"data": {"outage": n}})
            written.append(body["id"])
        await _json(http, "PUT", f"/api/sessions/{written[0]}", 200, json={"data": {"n": 5}})
        # A session only Redis holds (the cache clear emptied the memory tier) cannot be read.
        await _json(http, "GET", f"/api/sessions/{ids[0]}", 503)
        timings["fallback_seen_s"] = await _until(
            prometheus, "session_exporter_store_fallback_active == 1"
        )
        await _until(prometheus, 'session_exporter_health_issues{code="redis_down"} == 1')
    finally:
        await asyncio.to_thread(redis_server.start)
    timings["failback_seen_s"] = await _until(
        prometheus, "session_exporter_store_fallback_active == 0"
    )
    await _until(prometheus, "session_exporter_store_replayed_total > 0")
    return written


def test_every_panel_query_returns_series(scenario: Scenario) -> None:
    queries = list(panel_queries())
    assert len(queries) > 60
    empty = []
    for title, expr in queries:
        if not scenario.range(expr):
            empty.append(f"{title}: {expr}")
    assert not empty, "panel queries with no series:\n" + "\n".join(empty)


def test_every_recording_rule_returns_series(scenario: Scenario) -> None:
    names = recording_rules()
    assert len(names) >= 10
    empty = [name for name in names if not scenario.range(name)]
    assert not empty, f"recording rules with no series: {empty}"


def test_every_rule_loads_and_evaluates_cleanly(scenario: Scenario) -> None:
    loaded = scenario.prometheus.rules()
    alerts = yaml.safe_load((RULES / "alerts.yml").read_text(encoding="utf-8"))
    expected = set(recording_rules()) | {
        rule["alert"] for group in alerts["groups"] for rule in group["rules"]
    }
    assert {rule["name"] for rule in loaded} == expected
    broken = [(rule["name"], rule.get("lastError")) for rule in loaded if rule["health"] != "ok"]
    assert not broken


def test_every_metric_the_dashboards_and_rules_use_was_scraped(scenario: Scenario) -> None:
    scraped = set(scenario.prometheus.api("label/__name__/values"))
    from tests.unit.test_dashboards import EXPORTER_NAME, dashboard_exprs, rules

    exprs = dashboard_exprs() + [r["expr"] for r in rules("recording") + rules("alerts")]
    used = {name for expr in exprs for name in EXPORTER_NAME.findall(expr)}
    assert used - scraped == set()


def _values(series: list[dict[str, Any]], **labels: str) -> list[float]:
    return [
        float(value)
        for one in series
        if all(one["metric"].get(k) == v for k, v in labels.items())
        for _, value in one["values"]
        if value not in ("NaN", "+Inf", "-Inf")
    ]


def test_panels_show_what_happened(scenario: Scenario) -> None:
    """Not just series: the panels carry the traffic, the outage and the upstream calls."""
    by_title: dict[str, list[str]] = {}
    for title, expr in panel_queries():
        by_title.setdefault(title, []).append(expr)

    def shown(title: str, index: int = 0) -> list[dict[str, Any]]:
        return scenario.range(by_title[title][index])

    assert max(_values(shown("Store mode"))) == 1  # the outage, as the persistence row shows it
    assert max(_values(shown("Failover and replay", 0))) > 0  # failovers
    assert max(_values(shown("Failover and replay", 1))) > 0  # replayed writes
    issues = {s["metric"].get("code") for s in shown("Active health issues")}
    assert "redis_down" in issues
    assert max(_values(shown("Operations / s (live)"), manager="session")) > 0
    assert max(_values(shown("Operations / s (live)"), manager="figma")) > 0
    figma_api = shown("Figma API requests by status")
    assert max(_values(figma_api, endpoint="files", status="2xx")) > 0
    assert max(_values(figma_api, endpoint="files", status="429")) > 0
    mcp = shown("MCP server requests by status")
    assert max(_values(mcp, endpoint="get_screenshot", status="2xx")) > 0
    screenshots = shown("Screenshots by outcome")
    for source in ("api", "mcp"):
        assert max(_values(screenshots, source=source, outcome="success")) > 0
        assert max(_values(screenshots, source=source, outcome="cached")) > 0
    assert max(_values(shown("SSE clients", 0))) >= 1
    assert max(_values(shown("Cache hit ratio"))) > 0
    assert max(_values(shown("Active sessions"))) >= 17
    for index, kind in enumerate(("created", "retrieved", "updated", "deleted")):
        assert max(_values(shown("Session lifecycle", index))) > 0, kind


def _not_numbers(series: list[dict[str, Any]]) -> list[str]:
    samples = [v for one in series for v in one.get("values", [one.get("value")]) if v]
    return [value for _, value in samples if not math.isfinite(float(value))]


async def test_no_panel_query_is_nan_on_an_idle_replica(prometheus: PrometheusServer) -> None:
    """An idle replica shows numbers or "No data" on every panel, never NaN."""
    settings = parse_settings(
        {key: SETTINGS[key] for key in ("snapshot_interval", "health_interval")}
    )
    runner = web.AppRunner(create_app(settings, CollectorRegistry()), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    target = f"127.0.0.1:{port}"
    try:
        prometheus.set_targets([target])
        # Rates need two samples in the 5 s window; the recording rules need one evaluation.
        await _until(prometheus, f'count_over_time(up{{instance="{target}"}}[5s]) >= 4')
        await _until(
            prometheus,
            f'instance_manager:session_exporter_operation_duration_seconds_count:rate5m{{instance="{target}"}}',
        )
        end = time.time()
        queries = list(panel_queries(instance=target))
        broken = []
        for title, expr in queries:
            instant = prometheus.query(expr, at=end)
            ranged = prometheus.query_range(expr, end - 5, end, step=1.0)
            if bad := _not_numbers(instant) + _not_numbers(ranged):
                broken.append(f"{title}: {expr} -> {sorted(set(bad))}")
        for name in recording_rules():  # what the panels and alerts read
            if bad := _not_numbers(prometheus.query(f'{name}{{instance="{target}"}}', at=end)):
                broken.append(f"recording rule {name} -> {sorted(set(bad))}")
        assert len(queries) > 60
        assert not broken, "panel queries that are not numbers on an idle replica:\n" + "\n".join(
            broken
        )
    finally:
        prometheus.set_targets([])
        await runner.cleanup()
