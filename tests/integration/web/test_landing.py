"""GET /endpoints: plain HTML with the version, the current health and a link to every endpoint
(the dashboard at / links to it)."""

from __future__ import annotations

import re

from exporter import __version__
from tests.support.session_metrics import running_app


async def test_landing_page_shows_version_health_and_links_to_every_endpoint() -> None:
    async with running_app() as app:
        inst = app.runtime.sessions.instrumentation
        for _ in range(100):
            inst.record("get", 0.2)  # p95 200 ms: latency_high, score 85
        await app.json("/api/session-metrics/health-check?refresh=true")
        response = await app.client.get("/endpoints")
        page = await response.text()
        doc = await app.json("/api/openapi.json")

    assert response.status == 200
    assert response.content_type == "text/html"
    assert "<script" not in page.lower()
    assert f"<strong>{__version__}</strong>" in page
    assert '<a href="/">The live dashboard</a>' in page
    assert re.search(r"Health: <span class=\"healthy\">healthy</span> \(score 85\)", page)
    assert '<td>session</td><td class="healthy">healthy</td><td>85</td>' in page
    assert '<td>figma</td><td class="disabled">disabled</td>' in page
    for path, item in doc["paths"].items():
        if "get" in item and "{" not in path:
            assert f'<a href="{path}">' in page, path
        else:
            assert path in page, path


async def test_landing_page_reflects_a_critical_state() -> None:
    async with running_app() as app:
        inst = app.runtime.sessions.instrumentation
        for _ in range(100):
            inst.record("get", 0.9, error="timeout")  # latency 25 + errors 20: 55, poor
        await app.json("/api/session-metrics/health-check?refresh=true")
        page = await (await app.client.get("/endpoints")).text()
    assert 'Health: <span class="poor">poor</span> (score 55)' in page
