"""The dashboard in a real headless Chromium, against an exporter on a real redis-server.

One browser and one exporter for the module (the tests run in file order and share them): the
page loads without errors and shows what the JSON API says, is usable by keyboard, looks up a
session, clears the cache only with the admin token, shows an event before the next snapshot,
and turns the Redis indicator red when Redis dies (and back on failback) before the next one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from exporter.core.settings import parse_settings
from exporter.monitoring.runtime import Runtime
from exporter.web import create_app
from exporter.web.keys import LIFECYCLE
from tests.support.chromium import HeadlessChromium
from tests.support.dashboard_probe import DashboardProbe
from tests.support.redis_server import RedisServer
from tests.support.session_metrics import wait_for

API = "/api/session-metrics"
TOKEN = "dashboard-admin-token"
SNAPSHOT = 0.5


@dataclass
class Dashboard:
    client: TestClient[web.Request, web.Application]
    probe: DashboardProbe
    redis: RedisServer
    sessions: list[str]

    @property
    def runtime(self) -> Runtime:
        assert self.client.app is not None
        runtime = self.client.app[LIFECYCLE].runtime
        assert runtime is not None
        return runtime

    async def json(self, path: str, method: str = "GET", **kwargs: Any) -> Any:
        response = await self.client.request(method, path, **kwargs)
        assert response.status < 300, (path, response.status, await response.text())
        return await response.json()


@pytest_asyncio.fixture(scope="module")
async def dash(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Dashboard]:
    redis_server.ensure_running()
    redis_server.client().flushall()
    settings = {
        "redis_url": redis_server.url,
        "admin_token": TOKEN,
        "snapshot_interval": SNAPSHOT,
        "health_interval": 1.0,
        "probe_interval": 0.3,
        "redis_timeout": 0.25,
        "redis_retry_interval": 0.2,
    }
    app = create_app(parse_settings(settings), CollectorRegistry())
    probe = DashboardProbe()
    probe.install(app)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        sessions = []
        for n in range(3):
            created = await client.post("/api/sessions", json={"data": {"n": n}})
            sessions.append((await created.json())["id"])

        async def counted() -> bool:
            realtime = await (await client.get(f"{API}/realtime")).json()
            return bool(realtime["sessions"]["active"] == 3)

        await wait_for(counted, timeout=30)
        url = f"http://127.0.0.1:{client.port}/test/dashboard"
        with HeadlessChromium(url, tmp_path_factory.mktemp("dashboard")) as browser:
            try:
                await probe.until(lambda s: s["indicators"]["stream"] == "live", timeout=60)
            except AssertionError:
                raise AssertionError(f"the page never went live: {browser.log_tail()}") from None
            yield Dashboard(client, probe, redis_server, sessions)
    redis_server.ensure_running()


async def test_the_page_loads_without_errors_and_shows_what_the_api_says(dash: Dashboard) -> None:
    realtime = await dash.json(f"{API}/realtime")
    health = await dash.json(f"{API}/health-check")
    persistence = await dash.json(f"{API}/persistence")
    assert realtime["sessions"]["active"] == 3  # nothing changes them while the page is read

    state = await dash.probe.until(
        lambda s: (
            s["metrics"]["sessions.active"] == "3"
            and s["metrics"]["realtime.interval_seconds"] == f"{SNAPSHOT:g}"
            and s["indicators"]["session"] == health["components"]["session"]["status"]
        )
    )
    metrics, indicators = state["metrics"], state["indicators"]
    assert metrics["store.memory_entries"] == str(persistence["memory"]["entries"])
    assert metrics["store.replay_pending"] == str(persistence["replay"]["pending"])
    assert metrics["health.score"] == f"{health['score']:g}"
    assert metrics["health.status"] == health["status"]
    assert indicators["redis"] == "up"
    assert indicators["figma"] == "disabled"
    assert indicators["memory"] == "up"
    assert state["tokenAsked"] is True  # the page knows Cache Clear needs the token
    assert state["fleetVisible"] is True
    assert dash.probe.problems == []


async def test_the_tabs_work_with_the_keyboard(dash: Dashboard) -> None:
    await dash.probe.do("focus", "#tab-realtime")
    await dash.probe.do("key", "#tab-realtime", "ArrowLeft")
    state = await dash.probe.until(lambda s: s["focused"] == "tab-health")
    assert state["visiblePanels"] == ["panel-health"]
    await dash.probe.do("key", "#tab-health", "Home")
    state = await dash.probe.until(lambda s: s["focused"] == "tab-performance")
    assert state["visiblePanels"] == ["panel-performance"]
    await dash.probe.do("key", "#tab-performance", "End")
    state = await dash.probe.until(lambda s: s["visiblePanels"] == ["panel-realtime"])
    assert dash.probe.problems == []


async def test_analytics_looks_up_one_session_and_says_when_there_is_none(dash: Dashboard) -> None:
    session = dash.sessions[0]
    for _ in range(2):
        await dash.json(f"/api/sessions/{session}")
    expected = (await dash.json(f"/api/sessions/{session}/metrics"))["access"]
    await dash.probe.do("fill", "#lookup-id", session)
    await dash.probe.do("submit", "#lookup-form")
    state = await dash.probe.until(lambda s: "lookup.reads" in s["metrics"])
    assert state["metrics"]["lookup.reads"] == str(expected["reads"])
    assert state["metrics"]["lookup.writes"] == str(expected["writes"])

    await dash.probe.do("fill", "#lookup-id", "no-such-session")
    await dash.probe.do("submit", "#lookup-form")
    state = await dash.probe.until(lambda s: "404" in s["lookup"])
    assert "not found" in state["lookup"].lower()
    assert dash.probe.problems == []


async def test_cache_clear_is_refused_without_the_token_and_works_with_it(dash: Dashboard) -> None:
    before = (await dash.json(f"{API}/persistence"))["memory"]["entries"]
    assert before > 0

    await dash.probe.do("click", "#cache-clear")
    await dash.probe.until(lambda s: s["dialogOpen"] and s["tokenAsked"])
    await dash.probe.do("click", "#clear-confirm")
    state = await dash.probe.until(lambda s: (s["notice"] or "").startswith("Cache clear refused"))
    assert "401 unauthorized" in state["notice"]
    assert (await dash.json(f"{API}/persistence"))["memory"]["entries"] == before

    await dash.probe.do("click", "#cache-clear")
    await dash.probe.do("fill", "#clear-token", TOKEN)
    await dash.probe.do("click", "#clear-confirm")
    state = await dash.probe.until(lambda s: (s["notice"] or "").startswith("Cleared"))
    assert f"Cleared {before} memory entries" in state["notice"]
    assert (await dash.json(f"{API}/persistence"))["memory"]["entries"] == 0
    assert TOKEN not in str(state)
    assert dash.probe.problems == []


async def test_an_event_shows_before_the_next_snapshot(dash: Dashboard) -> None:
    await dash.json(
        f"{API}/cache/clear", method="POST", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    event = dash.runtime.events.since(0)[-1]
    assert event.type == "cache_cleared"
    late: list[dict[str, Any]] = []

    def shown(state: dict[str, Any]) -> bool:
        seen = any(e["id"] == event.id for e in state["events"])
        if not seen and (state["snapshot"] or 0) > event.timestamp:
            late.append(state)  # a snapshot taken after the event arrived before it
        return seen

    await dash.probe.until(shown)
    assert late == []
    assert dash.probe.problems == []


async def test_after_the_stream_drops_the_page_gets_what_it_missed(dash: Dashboard) -> None:
    """EventSource reconnects by itself with `Last-Event-ID` (the server sends `id:` with each
    event), and the server replays what was recorded while the page was away."""
    hub = dash.runtime.hub
    for subscriber in list(hub._subscribers):  # the server ends the page's stream
        hub.unsubscribe(subscriber)
        subscriber.wake()
    await wait_for(lambda: len(hub) == 0, timeout=10)
    missed = dash.runtime.events.record("cache_cleared", "recorded while the page was away")
    await wait_for(lambda: len(hub) == 1, timeout=30)  # reconnected, by itself
    state = await dash.probe.until(lambda s: any(e["id"] == missed.id for e in s["events"]))
    assert state["indicators"]["stream"] == "live"
    assert dash.probe.problems == []


async def test_the_fleet_section_shows_a_second_replica_and_the_totals(dash: Dashboard) -> None:
    other = create_app(
        parse_settings({"redis_url": dash.redis.url, "snapshot_interval": SNAPSHOT}),
        CollectorRegistry(),
    )
    async with TestClient(TestServer(other, host="127.0.0.1")):
        state = await dash.probe.until(lambda s: len(s["fleet"]) == 2)
        assert state["indicators"]["fleet"] == "up"
        assert state["fleet"][0][0].endswith("(this one)")
        assert state["fleetTotals"][0] == "fleet: 2"
    state = await dash.probe.until(lambda s: len(s["fleet"]) == 1)  # it left on shutdown
    assert dash.probe.problems == []


async def test_killing_redis_turns_its_indicator_red_and_failback_turns_it_back(
    dash: Dashboard,
) -> None:
    async def snapshot_where(connected: bool) -> float:
        """The timestamp of the first snapshot that says Redis is down, or connected with the
        fallback over (while the outage's writes replay, the indicator says so, in amber)."""
        found: list[float] = []

        async def says() -> bool:
            store = (realtime := await dash.json(f"{API}/realtime"))["store"]
            if store["redis_connected"] is connected and not (
                connected and store["fallback_active"]
            ):
                found.append(realtime["timestamp"])
            return bool(found)

        await wait_for(says, timeout=30, interval=0.05)
        return found[0]

    def indicator_after(stamp: float, expected: str) -> Any:
        wrong: list[dict[str, Any]] = []

        def check(state: dict[str, Any]) -> bool:
            if (state["snapshot"] or 0) < stamp:
                return False
            if state["indicators"]["redis"] != expected:
                wrong.append(state)
            return True

        return check, wrong

    dash.redis.kill()
    await dash.json("/api/sessions", method="POST", json={"data": {}})  # a write notices at once
    down_at = await snapshot_where(connected=False)
    check, wrong = indicator_after(down_at, "down")
    await dash.probe.until(check)
    assert wrong == [], wrong[0]

    dash.redis.ensure_running()
    up_at = await snapshot_where(connected=True)
    check, wrong = indicator_after(up_at, "up")
    await dash.probe.until(check)
    assert wrong == [], wrong[0]
    assert dash.probe.problems == []
