"""Builds the Figma layer: the one `aiohttp.ClientSession` (created and closed only here), the
Figma REST client (when a token is set), the MCP client (when a URL is set) and the manager;
closes them in reverse order. The availability probes belong to the runtime
(`probes.open_probes`), since they watch Redis too.

    async with open_figma_layer(settings, metrics, events, sessions) as figma:
        document = await figma.manager.get_file("FILEKEY")
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from exporter.core.build import __version__
from exporter.core.event_log import EventLog
from exporter.core.instrumentation import Instrumentation
from exporter.core.metrics import Metrics
from exporter.core.redaction import redact
from exporter.core.settings import Settings
from exporter.store.tiered_store import TieredStore
from exporter.upstreams.figma_client import FigmaClient
from exporter.upstreams.figma_manager import FigmaSessionManager, SessionCheck
from exporter.upstreams.figma_rate_limits import RateLimit
from exporter.upstreams.freshness import FreshnessPolicy
from exporter.upstreams.mcp_client import McpClient
from exporter.upstreams.response_cache import NAMESPACE as CACHE_NAMESPACE
from exporter.upstreams.response_cache import ResponseCache

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FigmaLayer:
    manager: FigmaSessionManager
    instrumentation: Instrumentation
    http: aiohttp.ClientSession
    figma: FigmaClient | None = None
    mcp: McpClient | None = None


def create_http_session(settings: Settings) -> aiohttp.ClientSession:
    """The outbound HTTP client: bounded connections, a total timeout, a User-Agent."""
    connector = aiohttp.TCPConnector(
        limit=settings.figma_max_concurrency * 2 + 4, ttl_dns_cache=300
    )
    timeout = aiohttp.ClientTimeout(
        total=settings.figma_timeout, connect=min(settings.figma_timeout, 5.0)
    )
    headers = {"User-Agent": f"session-metrics-exporter/{__version__}"}
    return aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers)


def rate_limit_recorder(events: EventLog) -> Callable[[RateLimit], None]:
    """Announce each new Figma lockout once: an event and a warning (no token, no file key)."""

    def record(limit: RateLimit) -> None:
        message = limit.describe(time.time())
        log.warning("%s", message)
        events.record(
            "upstream_rate_limited",
            message,
            service="figma_api",
            until=limit.until,
            retry_after=limit.retry_after,
            limit_type=limit.limit_type,
            plan_tier=limit.plan_tier,
        )

    return record


class SessionSide(Protocol):
    """What the Figma layer uses of the session layer (`sessions.factory.SessionLayer`): the
    store its response cache lives in, and the check of `?session_id=`."""

    @property
    def store(self) -> TieredStore: ...
    @property
    def session_check(self) -> SessionCheck: ...


@asynccontextmanager
async def open_figma_layer(
    settings: Settings, metrics: Metrics, events: EventLog, sessions: SessionSide
) -> AsyncIterator[FigmaLayer]:
    http = create_http_session(settings)
    mcp: McpClient | None = None
    manager: FigmaSessionManager | None = None
    try:
        figma = (
            FigmaClient(
                http,
                settings.figma_token,
                metrics,
                oauth_token=settings.figma_oauth_token,
                base_url=settings.figma_api_url,
                timeout=settings.figma_timeout,
                max_concurrency=settings.figma_max_concurrency,
                on_rate_limit=rate_limit_recorder(events),
            )
            if settings.figma_enabled
            else None
        )
        mcp = (
            McpClient(
                settings.mcp_url, metrics, timeout=settings.mcp_timeout, token=settings.mcp_token
            )
            if settings.mcp_url
            else None
        )
        instrumentation = Instrumentation(
            metrics,
            "figma",
            window_size=settings.window_size,
            slow_threshold_ms=settings.figma_slow_threshold_ms,
            events=events,
        )
        # Its own share of the memory tier: cached images must never evict sessions.
        sessions.store.memory.set_budget(CACHE_NAMESPACE, settings.figma_cache_budget)
        cache = ResponseCache(
            sessions.store,
            settings.figma_cache_ttl,
            instrumentation.record_cache,
            clock=sessions.store.clock.now,  # version records are shared: the fleet's clock
        )
        manager = FigmaSessionManager(
            cache,
            instrumentation,
            metrics,
            figma=figma,
            mcp=mcp,
            session_check=sessions.session_check,
            freshness=FreshnessPolicy(settings.figma_cache_ttl, settings.figma_cache_stale_seconds),
        )
        _log_configuration(settings, figma, mcp)
        if mcp is not None:
            await mcp.start()
        yield FigmaLayer(manager, instrumentation, http, figma, mcp)
    finally:
        if manager is not None:
            await manager.close()
        if mcp is not None:
            await mcp.close()
        await http.close()


def _log_configuration(
    settings: Settings, figma: FigmaClient | None, mcp: McpClient | None
) -> None:
    # The token is never logged; only whether one is set.
    if figma is None:
        log.info("Figma API disabled (no --figma-token or --figma-oauth-token)")
    else:
        log.info("Figma API at %s", redact(settings.figma_api_url))
    if mcp is None:
        log.info("MCP server disabled (no --mcp-url)")
    else:
        log.info("MCP server at %s", mcp.safe_url)
