"""The session-metrics JSON API under /api/session-metrics/: performance, realtime, persistence,
health check, cache stats and cache clear, the endpoints the project's original requirements
named (older code called them "the seed's"); the stream lives in `sse.py`."""

from __future__ import annotations

import time

from aiohttp import web

from exporter.monitoring.fleet_view import fleet_view
from exporter.monitoring.runtime import Runtime
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


def fleet_scope(request: web.Request) -> bool:
    """`?scope=fleet` (true) or `replica`, the default; anything else is a 400."""
    scope = request.query.get("scope", "replica")
    if scope not in ("replica", "fleet"):
        raise ApiError(400, "invalid_query", "query parameter 'scope' must be replica or fleet")
    return scope == "fleet"


def fleet_response(runtime: Runtime) -> web.Response:
    """The fleet view the publisher read last (no Redis I/O here), or `disabled`."""
    if runtime.fleet is not None:
        return payload_response(runtime.fleet.view)
    reason = "--fleet-publish is off" if runtime.sessions.redis is not None else "no --redis-url"
    view = fleet_view(
        [], me="", now=time.time(), status="disabled", message=f"{reason}: no fleet view"
    )
    return payload_response(view)


async def performance(request: web.Request) -> web.Response:
    if fleet_scope(request):
        return fleet_response(get_runtime(request))
    return payload_response(get_runtime(request).reports.performance())


async def realtime(request: web.Request) -> web.Response:
    if fleet_scope(request):
        return fleet_response(get_runtime(request))
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
    if fleet_scope(request):
        return fleet_response(get_runtime(request))
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
