"""Availability probes against the real services: Redis (redis-server), the Figma double, and a
real MCP server; each killed or misbehaving in turn, then brought back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CollectorRegistry

from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.core.settings import parse_settings
from exporter.sessions.factory import open_session_layer
from exporter.upstreams.factory import open_figma_layer
from exporter.upstreams.probes import Probes, open_probes, service_checks
from tests.support.figma_double import DEFAULT_TOKEN, Fault, FigmaDouble
from tests.support.mcp_server import McpServerProcess
from tests.support.redis_server import RedisServer


@asynccontextmanager
async def probed(
    double: FigmaDouble, mcp: McpServerProcess, redis_url: str | None, **values: Any
) -> AsyncIterator[tuple[Probes, Metrics, EventLog]]:
    double.reset()
    mcp.start()
    settings = {
        "figma_api_url": double.url,
        "figma_token": DEFAULT_TOKEN,
        "mcp_url": mcp.url,
        "redis_url": redis_url,
        "probe_interval": 0.2,
        "figma_timeout": 0.5,
        "mcp_timeout": 1,
        **values,
    }
    parsed = parse_settings(settings)
    metrics = Metrics(CollectorRegistry())
    events = EventLog(100, metrics)
    async with (
        open_session_layer(parsed, metrics, events) as sessions,
        open_figma_layer(parsed, metrics, events, sessions) as figma,
        open_probes(
            parsed, metrics, events, service_checks(sessions.redis, figma.figma, figma.mcp)
        ) as probes,
    ):
        yield probes, metrics, events


def up(metrics: Metrics, service: str) -> float | None:
    return metrics.registry.get_sample_value("session_exporter_upstream_up", {"service": service})


def failures(metrics: Metrics, service: str, reason: str) -> float:
    labels = {"service": service, "reason": reason}
    value = metrics.registry.get_sample_value(
        "session_exporter_upstream_probe_failures_total", labels
    )
    assert value is not None, f"no probe failures series for {labels}"
    return value


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_everything_up(
    double: FigmaDouble, mcp_server: McpServerProcess, redis_url: str
) -> None:
    async with probed(double, mcp_server, redis_url) as (probes, metrics, events):
        await probes.run_once()
        statuses = probes.status()
        for service in ("redis", "figma_api", "mcp_server"):
            assert statuses[service].state == "up", statuses[service]
            latency = statuses[service].latency_ms
            assert latency is not None and latency >= 0
            assert up(metrics, service) == 1
            duration = metrics.registry.get_sample_value(
                "session_exporter_upstream_probe_duration_seconds", {"service": service}
            )
            assert duration is not None and duration > 0
        assert double.requests["me"] >= 1
        assert [e.type for e in events.recent()] == []


async def test_mcp_server_killed_then_restarted(
    double: FigmaDouble, mcp_server: McpServerProcess, redis_url: str
) -> None:
    async with probed(double, mcp_server, None) as (probes, metrics, events):
        await eventually(lambda: up(metrics, "mcp_server") == 1)
        mcp_server.kill()
        try:
            await eventually(lambda: up(metrics, "mcp_server") == 0, timeout=10)
            status = probes.status()["mcp_server"]
            assert status.state == "down" and status.last_error
            assert failures(metrics, "mcp_server", "connection") >= 1
            assert up(metrics, "figma_api") == 1  # the others are unaffected
        finally:
            mcp_server.start()
        await eventually(lambda: up(metrics, "mcp_server") == 1, timeout=10)
        types = [e.type for e in events.recent()]
        assert types.count("upstream_down") == 1 and types[-1] == "upstream_up"


async def test_figma_probe_reasons(double: FigmaDouble, mcp_server: McpServerProcess) -> None:
    async with probed(double, mcp_server, None, probe_interval=3600) as (probes, metrics, _):
        await probes.run_once()
        double.fail("me", Fault("403"))
        await probes.run_once()
        assert probes.status()["figma_api"].last_error == (
            "Figma API me rejected the token (403): Invalid token"
        )
        double.fail("me", Fault("500"))
        await probes.run_once()
        double.fail("me", Fault("slow"))
        await probes.run_once()
        double.fail("me", Fault("malformed"))
        await probes.run_once()
        for reason in ("auth", "status", "timeout", "protocol"):
            assert failures(metrics, "figma_api", reason) == 1, reason
        assert probes.status()["figma_api"].state == "down"
        await probes.run_once()
        assert probes.status()["figma_api"].state == "up"


async def test_redis_killed_then_restarted(
    double: FigmaDouble, mcp_server: McpServerProcess, redis_url: str, redis_server: RedisServer
) -> None:
    async with probed(double, mcp_server, redis_url) as (probes, metrics, _):
        await eventually(lambda: up(metrics, "redis") == 1)
        redis_server.kill()
        try:
            await eventually(lambda: up(metrics, "redis") == 0, timeout=10)
            assert failures(metrics, "redis", "connection") >= 1
            status = probes.status()["redis"]
            assert status.state == "down" and "connection failed" in (status.last_error or "")
        finally:
            redis_server.start()
        await eventually(lambda: up(metrics, "redis") == 1, timeout=10)


async def test_probes_never_run_inside_a_scrape(
    double: FigmaDouble, mcp_server: McpServerProcess
) -> None:
    from prometheus_client import generate_latest

    async with probed(double, mcp_server, None, probe_interval=3600) as (probes, metrics, _):
        await probes.run_once()
        seen = double.requests["me"]
        for _ in range(5):
            generate_latest(metrics.registry)
        assert double.requests["me"] == seen
