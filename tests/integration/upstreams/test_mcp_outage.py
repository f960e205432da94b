"""Kill the MCP server under a running exporter: the next probe reports it down, screenshot calls
fail with a clear 503 naming it and are counted as errors; restart it and calls succeed again
without restarting the exporter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from exporter.core.settings import parse_settings
from exporter.web import create_app
from tests.support.mcp_server import SCREENSHOT_BYTES, McpServerProcess

PROBE_INTERVAL = 0.2


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(f"session_exporter_{name}", labels)
    assert value is not None, f"missing series session_exporter_{name}{labels}"
    return value


async def eventually(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> float:
    started = time.monotonic()
    while not await predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def scraped_up(client: TestClient[web.Request, web.Application]) -> float:
    """`upstream_up{service="mcp_server"}` as Prometheus would read it from /metrics."""
    text = await (await client.get("/metrics")).text()
    line = next(
        line
        for line in text.splitlines()
        if line.startswith('session_exporter_upstream_up{service="mcp_server"}')
    )
    return float(line.rsplit(" ", 1)[1])


async def test_kill_and_restart_the_mcp_server(mcp_server: McpServerProcess) -> None:
    mcp_server.start()
    registry = CollectorRegistry()
    settings = parse_settings(
        {"mcp_url": mcp_server.url, "probe_interval": PROBE_INTERVAL, "mcp_timeout": 2}
    )
    async with TestClient(TestServer(create_app(settings, registry=registry))) as client:

        async def screenshot(node: str) -> ClientResponse:
            return await client.post(
                "/api/figma/screenshots",
                json={"file_key": "FILE1", "node_id": node, "source": "mcp"},
            )

        async def is_up() -> bool:
            return await scraped_up(client) == 1

        async def is_down() -> bool:
            return await scraped_up(client) == 0

        await eventually(is_up)
        ok = await screenshot("1:2")
        assert ok.status == 200 and (await ok.json())["size_bytes"] == SCREENSHOT_BYTES

        mcp_server.kill()
        try:
            # The next probe round (every 0.2 s) notices: generous bound for a loaded machine.
            await eventually(is_down, timeout=10)
            failed = await screenshot("1:3")
            assert failed.status == 503
            error = (await failed.json())["error"]
            assert error["upstream"] == "mcp_server" and error["code"] == "upstream_unavailable"
            assert "MCP server" in error["message"]
            # The desktop server renders whatever file is open in the app, so its images were
            # never cached under a file key: nothing to serve while it is down.
            uncached = await screenshot("1:2")
            assert uncached.status == 503
            health = await (await client.get("/api/session-metrics/health-check")).text()
            assert "mcp_server" in health
        finally:
            mcp_server.start()

        assert sample(registry, "screenshots_total", source="mcp", outcome="error") == 2
        assert (
            sample(
                registry,
                "operation_errors_total",
                manager="figma",
                operation="screenshot",
                error="upstream",
            )
            == 2
        )
        assert (
            sample(
                registry,
                "upstream_requests_total",
                service="mcp_server",
                endpoint="get_screenshot",
                status="error",
            )
            >= 1
        )
        assert (
            sample(
                registry, "upstream_probe_failures_total", service="mcp_server", reason="connection"
            )
            >= 1
        )
        assert sample(registry, "events_total", type="upstream_down") == 1

        # Back without restarting the exporter: the very next call reconnects.
        again = await screenshot("1:4")
        assert again.status == 200
        await eventually(is_up, timeout=10)
        assert sample(registry, "events_total", type="upstream_up") == 1
        assert sample(registry, "screenshots_total", source="mcp", outcome="success") == 2
