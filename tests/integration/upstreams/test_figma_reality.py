"""Issue 12: Figma and MCP as they really behave. One test (or a few) per numbered point of the
issue; each failed on the code before the fix."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from exporter.core.errors import UpstreamError, UpstreamInvalid, UpstreamNotFound
from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.core.settings import parse_settings
from exporter.monitoring.statistics import window_error_ratio
from exporter.sessions.factory import open_session_layer
from exporter.upstreams.factory import open_figma_layer
from exporter.upstreams.figma_client import FigmaClient
from exporter.upstreams.probes import open_probes, service_checks
from exporter.upstreams.retry import RetryPolicy
from tests.integration.upstreams.test_figma_manager import Stack
from tests.support.figma_double import DEFAULT_OAUTH_TOKEN, DEFAULT_TOKEN, Fault, FigmaDouble
from tests.support.mcp_server import McpServerProcess
from tests.support.session_metrics import running_app, wait_for

LOW_LIMIT_WAIT = 396749  # what Figma's "low" rate-limit type answers: four and a half days


@pytest.fixture(autouse=True)
def fresh_double(double: FigmaDouble) -> None:
    double.reset()


@asynccontextmanager
async def stack(double: FigmaDouble | None, **values: Any) -> AsyncIterator[Stack]:
    """The session and Figma layers with the production factory and default thresholds."""
    settings: dict[str, Any] = {"probe_interval": 3600, "figma_timeout": 2, **values}
    if double is not None and "figma_oauth_token" not in values:
        settings |= {"figma_api_url": double.url, "figma_token": DEFAULT_TOKEN}
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
        yield Stack(sessions, figma, probes, metrics, events)


def figma_of(s: Stack) -> FigmaClient:
    assert s.figma.figma is not None
    return s.figma.figma


# -- 1. normal Figma latency pages nobody -------------------------------------------------------


async def test_1_realistic_figma_latency_is_not_slow_and_keeps_health(double: FigmaDouble) -> None:
    double.fail("files", Fault("slow", delay=0.4))  # Figma's usual +0.4 s for a file
    async with running_app(figma_api_url=double.url, figma_token=DEFAULT_TOKEN) as app:
        await app.json("/api/figma/files/FILE1")
        performance = await app.json("/api/session-metrics/performance")
        health = await app.json("/api/session-metrics/health-check?refresh=true")
        slow = app.sample("slow_operations_total", {"manager": "figma", "operation": "file"})
    figma = performance["managers"]["figma"]
    assert figma["slow_operations"]["threshold_ms"] == 2000
    assert figma["slow_operations"]["count"] == 0 and slow == 0
    codes = [issue["code"] for issue in health["components"]["figma"]["issues"]]
    assert not [code for code in codes if code.startswith("latency")], codes
    assert performance["managers"]["session"]["slow_operations"]["threshold_ms"] == 100


# -- 2. a least-privilege token does not make Figma look down -----------------------------------


async def test_2_token_without_current_user_read_is_reachable_with_an_issue(
    double: FigmaDouble,
) -> None:
    double.fail("me", Fault("403_scope"), times=None)
    async with running_app(figma_api_url=double.url, figma_token=DEFAULT_TOKEN) as app:
        assert (await app.json("/api/figma/files/FILE1"))["name"]  # data calls work
        body = await app.json("/api/session-metrics/health-check?refresh=true")
        up = app.sample("upstream_up", {"service": "figma_api"})
        events = [e.type for e in app.runtime.events.recent()]
    service = body["services"]["figma_api"]
    assert service["state"] == "limited_scope" and up == 1
    assert "current_user:read" in service["note"]
    assert service["details"]["missing_scope"] == "current_user:read"
    issues = {i["code"]: i for i in body["components"]["figma"]["issues"]}
    assert issues["figma_token_scope"]["penalty"] == 0
    assert "figma_api_down" not in issues
    assert "upstream_down" not in events


async def test_2_an_invalid_token_is_still_down(double: FigmaDouble) -> None:
    async with running_app(figma_api_url=double.url, figma_token="figd_wrong") as app:
        body = await app.json("/api/session-metrics/health-check?refresh=true")
    assert body["services"]["figma_api"]["state"] == "down"
    assert "Invalid token" in body["services"]["figma_api"]["last_error"]


async def test_2_a_429_on_the_probe_is_rate_limited_not_unreachable(double: FigmaDouble) -> None:
    async with stack(double) as s:
        await s.probes.run_once()  # the start-up round
        double.fail("me", Fault("429", retry_after=600, limit_type="high", plan_tier="org"))
        await s.probes.run_once()
        status = s.probes.status()["figma_api"]
        assert status.state == "rate_limited" and status.up
        await s.probes.run_once()  # the lockout answers, without asking again
        assert s.probes.status()["figma_api"].state == "rate_limited"
        assert double.requests["me"] == 2
        assert status.details is not None and status.details["plan_tier"] == "org"
        assert status.details["limit_type"] == "high"
        # /v1/me is in Figma's tier 3: files (tier 1) still go to Figma.
        assert (await s.manager.get_file("FILE1"))["name"]


async def test_2_a_429_on_files_makes_figma_rate_limited_without_asking_v1_me(
    double: FigmaDouble,
) -> None:
    async with stack(double) as s:
        await s.probes.run_once()  # the start-up round
        double.fail("files", Fault("429", retry_after=LOW_LIMIT_WAIT, limit_type="low"))
        with pytest.raises(UpstreamError):
            await s.manager.get_file("FILE1")
        before = double.requests["me"]
        await s.probes.run_once()
        status = s.probes.status()["figma_api"]
        assert status.state == "rate_limited"
        assert status.details is not None and status.details["limit_type"] == "low"
        assert double.requests["me"] == before


# -- 3. Retry-After is remembered ---------------------------------------------------------------


async def test_3_a_lockout_fails_at_once_without_a_request_and_serves_the_cache(
    double: FigmaDouble,
) -> None:
    async with running_app(figma_api_url=double.url, figma_token=DEFAULT_TOKEN) as app:
        await app.json("/api/figma/files/CACHED")
        double.fail(
            "files", Fault("429", retry_after=LOW_LIMIT_WAIT, limit_type="low", plan_tier="pro")
        )
        first = await app.client.get("/api/figma/files/FILE1")
        assert first.status == 503 and first.headers["Retry-After"] == str(LOW_LIMIT_WAIT)
        assert double.requests["files"] == 2
        for path in ("/api/figma/files/FILE2", "/api/figma/files/FILE1/nodes?ids=1:2"):
            again = await app.client.get(path)
            body = await again.json()
            assert again.status == 503, body
            assert LOW_LIMIT_WAIT - 60 < int(again.headers["Retry-After"]) <= LOW_LIMIT_WAIT
            assert "limit type low" in body["error"]["message"]
        assert double.requests["files"] == 2 and double.requests["nodes"] == 0
        assert (await app.json("/api/figma/files/CACHED"))["name"]  # cache hits still served
        health = await app.json("/api/session-metrics/health-check")
        events = [e for e in app.runtime.events.recent() if e.type == "upstream_rate_limited"]
        issue = app.sample(
            "health_issues", {"component": "figma", "code": "figma_api_rate_limited"}
        )
    assert health["services"]["figma_api"]["state"] == "rate_limited"
    limit = health["figma_rate_limit"]
    assert (limit["limit_type"], limit["plan_tier"], limit["tier"]) == ("low", "pro", 1)
    assert len(events) == 1 and events[0].details["plan_tier"] == "pro"
    assert issue == 1


async def test_3_header_values_stay_bounded(double: FigmaDouble) -> None:
    double.fail("files", Fault("429", retry_after=30, limit_type="x" * 500, plan_tier="Pro"))
    async with stack(double) as s:
        with pytest.raises(UpstreamError):
            await s.manager.get_file("FILE1")
        limit = figma_of(s).rate_limit()
        assert limit is not None and (limit.limit_type, limit.plan_tier) == ("other", "pro")


# -- 4. one deadline per call -------------------------------------------------------------------


async def test_4_5xx_is_retried_only_within_the_deadline(double: FigmaDouble) -> None:
    double.fail("files", Fault("500"), times=None)
    async with aiohttp.ClientSession() as http:
        slow_backoff = RetryPolicy(max_retries=2, backoff_base=5.0, backoff_cap=5.0)
        figma = FigmaClient(
            http,
            DEFAULT_TOKEN,
            Metrics(CollectorRegistry()),
            base_url=double.url,
            timeout=1.0,
            retry=slow_backoff,
        )
        with pytest.raises(UpstreamError, match="failed \\(500\\)"):
            await figma.get_file("FILE1")
    assert double.requests["files"] == 1  # a 2.5 s backoff does not fit in a 1 s deadline


async def test_4_figma_timeout_bounds_the_whole_call(double: FigmaDouble) -> None:
    double.fail("images", Fault("slow", delay=3.0), times=None)
    async with stack(double, figma_timeout=0.3) as s:
        with pytest.raises(UpstreamError):
            await s.manager.screenshot("FILE1", "1:2", source="api")
    assert double.requests["images"] == 1


# -- 5. a Figma 404 or 400 is the client's error ------------------------------------------------


async def test_5_not_found_and_invalid_are_client_errors(double: FigmaDouble) -> None:
    double.fail("nodes", Fault("400"))
    async with stack(double) as s:
        await s.manager.get_file("FILE1")
        with pytest.raises(UpstreamNotFound, match="Not found"):
            await s.manager.get_file("missingFILE")
        with pytest.raises(UpstreamNotFound):
            await s.manager.screenshot("FILE1", "1:404", source="api")  # Figma cannot render it
        with pytest.raises(UpstreamInvalid) as invalid:
            await s.manager.get_nodes("FILE1", ["1:2"])
        assert str(invalid.value).endswith("Invalid parameter: ids must be node ids")
        errors = {
            (op, err): s.sample("operation_errors_total", manager="figma", operation=op, error=err)
            for op, err in (
                ("file", "not_found"),
                ("screenshot", "not_found"),
                ("nodes", "invalid"),
            )
        }
        assert set(errors.values()) == {1}
        assert (
            s.sample("operation_errors_total", manager="figma", operation="file", error="upstream")
            == 0
        )
        assert window_error_ratio(s.figma.instrumentation) == 0


async def test_5_client_errors_cost_no_health(double: FigmaDouble) -> None:
    async with running_app(figma_api_url=double.url, figma_token=DEFAULT_TOKEN) as app:
        await app.json("/api/figma/files/FILE1")
        await app.json("/api/figma/files/FILE2")
        missing = await app.client.get("/api/figma/files/missingFILE")
        assert missing.status == 404
        body = await app.json("/api/session-metrics/health-check?refresh=true")
    codes = [issue["code"] for issue in body["components"]["figma"]["issues"]]
    assert not [code for code in codes if code.startswith("error_ratio")], codes


# -- 6. MCP screenshots of the file they are of -------------------------------------------------


@pytest.fixture(scope="module")
def desktop() -> Iterator[McpServerProcess]:
    process = McpServerProcess(open_file="FILEA").start()
    yield process
    process.stop()


async def test_6_a_desktop_screenshot_is_never_served_for_another_file(
    double: FigmaDouble, desktop: McpServerProcess
) -> None:
    desktop.open_file = "FILEA"
    desktop.start()
    async with stack(double, mcp_url=desktop.url, mcp_timeout=5) as s:
        first = await s.manager.screenshot("FILEB", "1:2", source="mcp")
        assert b"file=FILEA" in first.data  # the desktop app renders what is open
        desktop.kill()
        desktop.open_file = "FILEB"
        desktop.start()
        second = await s.manager.screenshot("FILEB", "1:2", source="mcp")
    assert not second.cached
    assert b"file=FILEB" in second.data


async def test_6_a_node_id_the_desktop_server_refuses_is_a_400(
    double: FigmaDouble, desktop: McpServerProcess
) -> None:
    desktop.start()
    async with running_app(mcp_url=desktop.url, mcp_timeout=5) as app:
        response = await app.client.post(
            "/api/figma/screenshots",
            json={"file_key": "FILE1", "node_id": "I1:2;3:4", "source": "mcp"},
        )
        body = await response.json()
    assert response.status == 400, body
    assert body["error"]["code"] == "invalid_request"
    assert "nodeId" in body["error"]["message"] and "pattern" in body["error"]["message"]


async def test_6_a_remote_server_is_told_the_file_and_its_screenshots_are_cached(
    double: FigmaDouble,
) -> None:
    remote = McpServerProcess(remote=True).start()
    try:
        async with stack(double, mcp_url=remote.url, mcp_timeout=5) as s:
            first = await s.manager.screenshot("FILEB", "1:2", source="mcp")
            again = await s.manager.screenshot("FILEB", "1:2", source="mcp")
            other = await s.manager.screenshot("FILEC", "1:2", source="mcp")
    finally:
        remote.stop()
    assert b"file=FILEB" in first.data and not first.cached
    assert again.cached and again.sha256 == first.sha256
    assert b"file=FILEC" in other.data and not other.cached


# -- 8. anonymous refreshes do not spend the Figma quota ----------------------------------------


async def test_8_a_burst_of_refreshes_costs_at_most_a_couple_of_figma_requests(
    double: FigmaDouble,
) -> None:
    async with running_app(figma_api_url=double.url, figma_token=DEFAULT_TOKEN) as app:
        await wait_for(lambda: double.requests["me"] >= 1, timeout=10)  # the start-up round
        before = double.requests["me"]
        for _ in range(4):
            await asyncio.gather(
                *(app.json("/api/session-metrics/health-check?refresh=true") for _ in range(50))
            )
        spent = double.requests["me"] - before
    assert spent <= 2, spent


# -- 9. URLs, OAuth, Figma's own words ----------------------------------------------------------


async def test_9_userinfo_in_the_api_url_is_never_logged(
    double: FigmaDouble, caplog: pytest.LogCaptureFixture
) -> None:
    url = double.url.replace("http://", "http://user:hunter2@")
    with caplog.at_level(logging.INFO):
        async with stack(None, figma_api_url=url, figma_token=DEFAULT_TOKEN):
            pass
    assert "Figma API at" in caplog.text
    assert "hunter2" not in caplog.text and "user:" not in caplog.text


async def test_9_an_oauth_token_is_sent_as_bearer(double: FigmaDouble) -> None:
    async with stack(double, figma_api_url=double.url, figma_oauth_token=DEFAULT_OAUTH_TOKEN) as s:
        assert (await s.manager.get_file("FILE1"))["name"]
        await s.probes.run_once()
        assert s.probes.status()["figma_api"].state == "up"
    assert double.tokens_seen[0] == f"Bearer {DEFAULT_OAUTH_TOKEN}"
    assert DEFAULT_TOKEN not in double.tokens_seen


async def test_9_figmas_err_text_is_in_the_message_sanitised(double: FigmaDouble) -> None:
    double.fail("files", Fault("400"))
    async with stack(double) as s:
        with pytest.raises(UpstreamInvalid) as caught:
            await s.manager.get_file("FILE1")
    message = str(caught.value)
    assert "Invalid parameter: ids must be node ids" in message
    assert "\x00" not in message and "\n" not in message
