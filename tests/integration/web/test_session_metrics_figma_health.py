"""The figma component of the health score: configured services that fail their probes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.figma_double import DEFAULT_TOKEN, Fault, FigmaDouble
from tests.support.redis_server import free_port
from tests.support.session_metrics import running_app, wait_for


@pytest.fixture
async def figma() -> AsyncIterator[FigmaDouble]:
    double = await FigmaDouble().start()
    yield double
    await double.close()


async def test_figma_api_and_mcp_down_cost_their_penalties(figma: FigmaDouble) -> None:
    figma.fail("me", Fault("500"), times=None)
    settings = {
        "figma_api_url": figma.url,
        "figma_token": DEFAULT_TOKEN,
        "figma_timeout": 1.0,
        "mcp_url": f"http://127.0.0.1:{free_port()}/mcp",  # nothing listens there
        "mcp_timeout": 0.5,
    }
    async with running_app(**settings) as app:
        body = await app.json("/api/session-metrics/health-check?refresh=true")
        assert app.sample("health_score", {"component": "figma"}) == 65
        assert app.sample("health_issues", {"component": "figma", "code": "mcp_server_down"}) == 1
        assert app.sample("health_issues", {"component": "session", "code": "mcp_server_down"}) == 0
        figma.reset()
        # Refreshes within a few seconds share one probe round: poll until a new round ran.
        healthy_api: dict[str, object] = {}

        async def recovered() -> bool:
            healthy_api.update(await app.json("/api/session-metrics/health-check?refresh=true"))
            return healthy_api["score"] == 85

        await wait_for(recovered, timeout=15, interval=0.2)

    assert (body["score"], body["status"]) == (65, "degraded")
    assert body["components"]["session"] == {"score": 100, "status": "healthy", "issues": []}
    assert {i["code"]: i["penalty"] for i in body["components"]["figma"]["issues"]} == {
        "figma_api_down": 20,
        "mcp_server_down": 15,
    }
    assert body["services"]["figma_api"]["state"] == "down"
    assert body["services"]["figma_api"]["last_error"]
    assert DEFAULT_TOKEN not in str(body)
    assert (healthy_api["score"], healthy_api["status"]) == (85, "healthy")


async def test_unconfigured_services_are_disabled_not_down() -> None:
    async with running_app() as app:
        body = await app.json("/api/session-metrics/health-check?refresh=true")
        assert app.sample("health_status", {"component": "figma", "status": "disabled"}) == 1
        up = app.registry.get_sample_value("session_exporter_upstream_up", {"service": "figma_api"})
        assert up is None  # a disabled service exports no upstream_up series, and has no issue
        assert app.sample("upstream_enabled", {"service": "figma_api"}) == 0
    assert body["components"]["figma"]["status"] == "disabled"
    assert body["score"] == 100
