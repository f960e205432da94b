"""FigmaSessionManager through the real session layer (memory tier, and Redis) and the Figma double:
caching by tier, single flight, screenshot metrics, session attribution, degraded stores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.core.errors import SessionNotFound, UpstreamError, UpstreamUnavailable
from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.core.settings import parse_settings
from exporter.sessions.factory import SessionLayer, open_session_layer
from exporter.upstreams.factory import FigmaLayer, open_figma_layer
from exporter.upstreams.figma_manager import FigmaSessionManager
from exporter.upstreams.probes import Probes, open_probes, service_checks
from exporter.upstreams.retry import RetryPolicy
from tests.support.figma_double import DEFAULT_TOKEN, PNG_BYTES, Fault, FigmaDouble
from tests.support.redis_server import RedisServer


@pytest.fixture(autouse=True)
def fresh_double(double: FigmaDouble) -> None:
    double.reset()


@dataclass
class Stack:
    sessions: SessionLayer
    figma: FigmaLayer
    probes: Probes
    metrics: Metrics
    events: EventLog

    @property
    def manager(self) -> FigmaSessionManager:
        return self.figma.manager

    def sample(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(f"session_exporter_{name}", labels)
        assert value is not None, f"no sample {name}{labels}"
        return value


@asynccontextmanager
async def open_stack(double: FigmaDouble | None, **values: Any) -> AsyncIterator[Stack]:
    settings: dict[str, Any] = {
        "probe_interval": 3600,
        # Generous: no test here waits for a timeout, and a loaded machine (a 2 s budget failed
        # once at a load average of 15) must not turn a local double's answer into one.
        "figma_timeout": 10,
        "redis_retry_interval": 0.2,
        **values,
    }
    if double is not None:
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


async def test_second_identical_call_is_a_memory_hit(double: FigmaDouble) -> None:
    async with open_stack(double) as stack:
        first = await stack.manager.get_file("FILE1", depth=2)
        second = await stack.manager.get_file("FILE1", depth=2)
        assert first == second and first["name"] == "Design FILE1"
        assert double.requests["files"] == 1
        assert (
            stack.sample("cache_requests_total", manager="figma", tier="memory", result="hit") == 1
        )
        assert (
            stack.sample("cache_requests_total", manager="figma", tier="memory", result="miss") == 1
        )
        assert (
            stack.sample("operation_duration_seconds_count", manager="figma", operation="file") == 2
        )
        await stack.manager.get_file("FILE1", depth=3)  # a different request is a different entry
        await stack.manager.get_nodes("FILE1", ["1:2", "1:3"])
        await stack.manager.get_nodes("FILE1", ["1:2", "1:3"])
        assert double.requests["files"] == 2 and double.requests["nodes"] == 1
        assert (
            stack.sample(
                "upstream_requests_total", service="figma_api", endpoint="files", status="2xx"
            )
            == 2
        )


async def test_ten_concurrent_identical_requests_make_one_upstream_call(
    double: FigmaDouble,
) -> None:
    double.fail(
        "files", Fault("slow", delay=0.2)
    )  # keeps the first call in flight while the rest arrive
    double.fail("images", Fault("slow", delay=0.2))
    async with open_stack(double) as stack:
        files = await asyncio.gather(*(stack.manager.get_file("FILE1") for _ in range(10)))
        shots = await asyncio.gather(
            *(stack.manager.screenshot("FILE1", "1:2", source="api") for _ in range(10))
        )
        assert double.requests["files"] == 1
        assert double.requests["images"] == 1 and double.requests["image_download"] == 1
        assert all(document == files[0] for document in files)
        assert {shot.sha256 for shot in shots} == {shots[0].sha256}
        assert stack.manager.stats()["shared_upstream_calls"] == 18
        assert stack.sample("screenshot_size_bytes_count", source="api") == 1  # one capture


async def test_screenshot_metrics_match_the_bytes_served(double: FigmaDouble) -> None:
    async with open_stack(double) as stack:
        manager = stack.manager
        a = await manager.screenshot("FILE1", "1:2", source="api")
        b = await manager.screenshot("FILE1", "1:3", source="api", format="svg", scale=2)
        again = await manager.screenshot("FILE1", "1:2", source="api")
        assert (a.cached, b.cached, again.cached) == (False, False, True)
        assert (
            a.size_bytes == PNG_BYTES and a.content_type == "image/png" and a.data[:4] == b"\x89PNG"
        )
        assert b.content_type == "image/svg+xml"
        assert again.sha256 == a.sha256 and again.data == a.data
        assert (
            stack.sample("screenshot_size_bytes_sum", source="api")
            == double.bytes_served
            == 2 * PNG_BYTES
        )
        assert stack.sample("screenshot_size_bytes_count", source="api") == 2
        assert stack.sample("screenshots_total", source="api", outcome="success") == 2
        assert stack.sample("screenshots_total", source="api", outcome="cached") == 1
        assert stack.sample("screenshot_duration_seconds_count", source="api") == 3
        assert (
            stack.sample(
                "upstream_requests_total",
                service="figma_api",
                endpoint="image_download",
                status="2xx",
            )
            == 2
        )
        stats = manager.stats()["screenshots"]["api"]
        assert stats["success"] == 2 and stats["cached"] == 1 and stats["success_rate"] == 1.0
        assert stats["captured_bytes"] == double.bytes_served


async def test_a_10_mb_screenshot_is_captured_and_cached(double: FigmaDouble) -> None:
    double.image_size = 10 * 1024 * 1024
    async with open_stack(double, figma_timeout=20) as stack:
        shot = await stack.manager.screenshot("FILE1", "1:2", source="api")
        again = await stack.manager.screenshot("FILE1", "1:2", source="api")
        assert shot.size_bytes == again.size_bytes == 10 * 1024 * 1024
        assert again.cached and double.requests["image_download"] == 1
        assert stack.sample("screenshot_size_bytes_sum", source="api") == 10 * 1024 * 1024


async def test_failures_are_counted_as_errors(double: FigmaDouble) -> None:
    double.fail("files", Fault("500"), times=None)
    double.fail("images", Fault("404"))
    async with open_stack(double) as stack:
        assert stack.figma.figma is not None
        stack.figma.figma.retry = RetryPolicy(max_retries=1, backoff_base=0.01)
        with pytest.raises(UpstreamError):
            await stack.manager.get_file("FILE1")
        with pytest.raises(UpstreamError):
            await stack.manager.screenshot("FILE1", "1:2", source="api")
        assert (
            stack.sample(
                "operation_errors_total", manager="figma", operation="file", error="upstream"
            )
            == 1
        )
        # A node Figma answers 404 for is the caller's error, like an unknown session id.
        assert (
            stack.sample(
                "operation_errors_total", manager="figma", operation="screenshot", error="not_found"
            )
            == 1
        )
        assert stack.sample("screenshots_total", source="api", outcome="error") == 1
        assert stack.figma.instrumentation.error_counts["file"] == 1
        assert stack.manager.stats()["screenshots"]["api"]["success_rate"] == 0.0
        double.reset()
        assert (await stack.manager.get_file("FILE1"))["name"]  # failures are not cached


async def test_calls_are_attributed_to_a_live_session(double: FigmaDouble) -> None:
    async with open_stack(double) as stack:
        session = await stack.sessions.manager.create({"user": "ada"})
        await stack.manager.get_file("FILE1", session_id=session.id)
        await stack.manager.get_file("FILE1", session_id=session.id)
        await stack.manager.screenshot("FILE1", "1:2", source="api", session_id=session.id)
        usage = stack.manager.session_usage(session.id)
        assert usage is not None
        assert (usage["file"], usage["screenshot"], usage["errors"]) == (2, 1, 0)
        with pytest.raises(SessionNotFound):
            await stack.manager.get_file("FILE2", session_id="no-such-session")
        assert double.requests["files"] == 1  # the unknown session never reached Figma
        assert stack.manager.session_usage("no-such-session") is None  # unknown ids take no room
        not_found = {"manager": "figma", "operation": "file", "error": "not_found"}
        assert stack.sample("operation_errors_total", **not_found) == 1
        double.fail("files", Fault("404"))
        with pytest.raises(UpstreamError):
            await stack.manager.get_file("FILE3", session_id=session.id)
        usage = stack.manager.session_usage(session.id)
        assert usage is not None and usage["errors"] == 1


async def test_session_usage_map_is_bounded(double: FigmaDouble) -> None:
    async with open_stack(double) as stack:
        stack.manager.usage.limit = 3
        sessions = [await stack.sessions.manager.create({}) for _ in range(5)]
        for session in sessions:
            await stack.manager.get_file("FILE1", session_id=session.id)
        assert len(stack.manager.usage) == 3
        assert stack.manager.session_usage(sessions[0].id) is None
        assert stack.manager.session_usage(sessions[-1].id) is not None


async def test_not_configured_services_raise_unavailable() -> None:
    async with open_stack(None) as stack:
        with pytest.raises(UpstreamUnavailable, match="not configured") as caught:
            await stack.manager.get_file("FILE1")
        assert caught.value.service == "figma_api"
        with pytest.raises(UpstreamUnavailable, match="not configured") as caught:
            await stack.manager.screenshot("FILE1", "1:2", source="mcp")
        assert caught.value.service == "mcp_server"
        statuses = stack.probes.status()
        assert {name: s.state for name, s in statuses.items()} == {
            "redis": "disabled",
            "figma_api": "disabled",
            "mcp_server": "disabled",
        }
        assert stack.sample("upstream_enabled", service="figma_api") == 0


async def test_clear_cache_sends_the_next_call_upstream(double: FigmaDouble) -> None:
    async with open_stack(double) as stack:
        await stack.manager.get_file("FILE1")
        await stack.manager.screenshot("FILE1", "1:2", source="api")
        # The document, the render and FILE1's version record (what keys both to its version).
        assert await stack.manager.clear_cache() == 3
        await stack.manager.get_file("FILE1")
        assert double.requests["files"] == 2


async def test_redis_tier_serves_what_memory_dropped(double: FigmaDouble, redis_url: str) -> None:
    async with open_stack(double, redis_url=redis_url) as stack:
        await stack.manager.get_file("FILE1")
        await stack.manager.screenshot("FILE1", "1:2", source="api")
        await stack.sessions.store.clear_memory("figma:")
        again = await stack.manager.get_file("FILE1")
        shot = await stack.manager.screenshot("FILE1", "1:2", source="api")
        assert again["name"] == "Design FILE1" and shot.cached and shot.size_bytes == PNG_BYTES
        assert double.requests["files"] == 1 and double.requests["image_download"] == 1
        assert (
            stack.sample("cache_requests_total", manager="figma", tier="redis", result="hit") == 2
        )
        redis = stack.sessions.redis
        assert redis is not None
        keys = await redis.keys("*")  # bytes: the client does not decode
        names = [key.decode() if isinstance(key, bytes) else key for key in keys]
        assert names and all("FILE1" not in name and "1:2" not in name for name in names)


async def test_a_redis_outage_is_a_cache_miss_not_an_error(
    double: FigmaDouble, redis_url: str, redis_server: RedisServer
) -> None:
    async with open_stack(double, redis_url=redis_url) as stack:
        await stack.manager.get_file("FILE1")
        await stack.sessions.store.clear_memory("figma:")
        redis_server.kill()
        try:
            document = await stack.manager.get_file("FILE1")  # Redis gone, memory empty: ask Figma
            assert document["name"] == "Design FILE1"
            assert double.requests["files"] == 2
            assert stack.figma.instrumentation.error_counts["file"] == 0
            await stack.manager.get_file("FILE1")  # and what it fetched is served from memory
            assert double.requests["files"] == 2
        finally:
            redis_server.start()
