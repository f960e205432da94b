"""The session-metrics JSON API under /api/session-metrics/: performance, realtime, persistence,
health check, cache stats and cache clear, the endpoints the project's original requirements
named (older code called them "the seed's"); the stream lives in `sse.py`."""

from __future__ import annotations

from aiohttp import web

from exporter.monitoring.service import CLEAR_SCOPES
from exporter.web.keys import get_runtime
from exporter.web.responses import ApiError, payload_response

PREFIX = "/api/session-metrics"
TRUE = frozenset({"", "1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


def query_flag(request: web.Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter; anything but true/false/1/0/yes/no/on/off is a 400."""
    raw = request.query.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ApiError(400, "invalid_query", f"query parameter {name!r} must be true or false")


async def performance(request: web.Request) -> web.Response:
    return payload_response(get_runtime(request).reports.performance())


async def realtime(request: web.Request) -> web.Response:
    return payload_response(get_runtime(request).reports.realtime())


async def persistence(request: web.Request) -> web.Response:
    return payload_response(get_runtime(request).reports.persistence())


async def health_check(request: web.Request) -> web.Response:
    refresh = query_flag(request, "refresh")
    service = get_runtime(request).service
    if refresh:
        await service.refresh_health()
    return payload_response(service.health())


async def cache_stats(request: web.Request) -> web.Response:
    return payload_response(get_runtime(request).reports.cache_stats())


async def clear_cache(request: web.Request) -> web.Response:
    scope = request.query.get("scope", "memory")
    if scope not in CLEAR_SCOPES:
        raise ApiError(
            400,
            "invalid_query",
            f"query parameter 'scope' must be one of {', '.join(CLEAR_SCOPES)}",
        )
    return payload_response(await get_runtime(request).service.clear_cache(scope))
