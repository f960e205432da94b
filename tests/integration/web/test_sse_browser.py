"""A real browser's EventSource at --sse-max-clients: turned away with a 200 stream that sets
`retry:`, it reconnects by itself once a slot frees (a 503 would end it for good)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from exporter.core.settings import parse_settings
from exporter.web import create_app
from tests.support.chromium import HeadlessChromium
from tests.support.session_metrics import FAST, SseReader, wait_for

STREAM = "/api/session-metrics/stream"
PAGE = """<!doctype html><title>sse</title><script>
const report = (kind, state) =>
  fetch("/test/report", {method: "POST", body: JSON.stringify({kind, state})});
const source = new EventSource("STREAM_PATH");
source.onopen = () => report("open", source.readyState);
source.onerror = () => report("error", source.readyState);
source.addEventListener("health", () => report("health", source.readyState));
</script>""".replace("STREAM_PATH", STREAM)


def page_routes(app: web.Application, reports: list[dict[str, Any]]) -> None:
    """The page and its report sink, on the exporter's own origin (EventSource needs no CORS)."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def report(request: web.Request) -> web.Response:
        reports.append(orjson.loads(await request.read()))
        return web.Response(status=204)

    app.router.add_get("/test/page", page)
    app.router.add_post("/test/report", report)


async def test_a_turned_away_browser_reconnects_by_itself(tmp_path: Path) -> None:
    reports: list[dict[str, Any]] = []
    registry = CollectorRegistry()
    app = create_app(parse_settings({**FAST, "sse_max_clients": 1}), registry)
    page_routes(app, reports)

    def clients() -> float | None:
        return registry.get_sample_value("session_exporter_sse_clients")

    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        holder = await client.get(STREAM)  # takes the only slot
        assert holder.status == 200
        await SseReader(holder).next()
        url = f"http://127.0.0.1:{client.port}/test/page"
        with HeadlessChromium(url, tmp_path) as browser:
            # Turned away: the stream ends, EventSource says CONNECTING (0), i.e. it will retry.
            try:
                await wait_for(lambda: any(r["kind"] == "error" for r in reports), timeout=60)
            except AssertionError:
                raise AssertionError(f"no report from the page: {browser.log_tail()}") from None
            assert all(r["state"] != 2 for r in reports), reports  # never CLOSED
            assert not any(r["kind"] == "health" for r in reports)
            holder.close()
            await wait_for(lambda: clients() == 0, timeout=10)
            # No page reload, no script retry: the browser's own reconnection gets the slot.
            await wait_for(lambda: any(r["kind"] == "health" for r in reports), timeout=30)
            assert clients() == 1
            assert all(r["state"] != 2 for r in reports), reports
        await wait_for(lambda: clients() == 0, timeout=10)
    await asyncio.sleep(0)
