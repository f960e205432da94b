"""GET /api/sessions/{id}/metrics: per-session access counts, cache hits and response times."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from exporter.core.settings import parse_settings
from exporter.web import create_app
from tests.support.figma_double import DEFAULT_TOKEN, FigmaDouble


@pytest_asyncio.fixture
async def http(double: FigmaDouble) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    double.reset()
    settings = {"figma_api_url": double.url, "figma_token": DEFAULT_TOKEN, "probe_interval": 3600}
    app = create_app(parse_settings(settings), registry=CollectorRegistry())
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_a_sessions_own_statistics(http: TestClient[web.Request, web.Application]) -> None:
    sid = (await (await http.post("/api/sessions", json={"data": {"a": 1}})).json())["id"]
    for _ in range(3):
        assert (await http.get(f"/api/sessions/{sid}")).status == 200
    assert (await http.put(f"/api/sessions/{sid}", json={"data": {"a": 2}})).status == 200
    assert (await http.get(f"/api/figma/files/FILE1?session={sid}")).status == 200

    body = await (await http.get(f"/api/sessions/{sid}/metrics")).json()
    again = await (await http.get(f"/api/sessions/{sid}/metrics")).json()
    access = body["access"]
    assert body["id"] == sid
    assert access["reads"] == 4  # three GETs and the Figma call's session check
    assert access["writes"] == 2  # create and update
    assert access["cache"]["memory_hits"] == 4 and access["cache"]["hit_ratio"] == 1.0
    assert access["avg_ms"] > 0 and access["max_ms"] >= access["avg_ms"]
    assert body["figma"]["file"] == 1
    assert again["access"]["reads"] == 4  # reading the statistics is not a read of the session


async def test_unknown_and_deleted_sessions_are_404(
    http: TestClient[web.Request, web.Application],
) -> None:
    missing = await http.get("/api/sessions/no-such-session/metrics")
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"
    sid = (await (await http.post("/api/sessions", json={"data": {}})).json())["id"]
    assert (await http.delete(f"/api/sessions/{sid}")).status == 204
    assert (await http.get(f"/api/sessions/{sid}/metrics")).status == 404
