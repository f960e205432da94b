"""The sessions API: POST/GET/PUT/DELETE /api/sessions[/{id}]."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import orjson
from aiohttp import web
from msgspec import UNSET, UnsetType

from exporter.core.errors import SessionNotFound
from exporter.monitoring.runtime import Runtime
from exporter.monitoring.session_counters import fleet_access
from exporter.sessions.manager import MAX_TTL, SessionManager
from exporter.web.bodies import SessionAccess, SessionCreate, SessionUpdate
from exporter.web.keys import get_runtime
from exporter.web.responses import ApiError, payload_response, read_body
from exporter.web.session_metrics_routes import fleet_scope

JSON_TYPE = "application/json"


def _manager(request: web.Request) -> SessionManager:
    return get_runtime(request).sessions.manager


def _field_error(field: str, reason: str) -> ApiError:
    if field == "ttl_seconds":
        message = f"'ttl_seconds' must be a number greater than 0 and at most {MAX_TTL:.0f}"
        return ApiError(400, "invalid_ttl", message)
    if field == "data" and "missing" in reason:
        return ApiError(400, "invalid_data", "field 'data' (a JSON object) is required")
    return ApiError(400, "invalid_data", "field 'data' must be a JSON object")


def _data(raw: msgspec.Raw | UnsetType) -> dict[str, Any]:
    """`data`, parsed by orjson as the stored document is (see bodies.SessionData)."""
    if raw is UNSET:
        return {}
    try:
        data = orjson.loads(memoryview(raw))
    except orjson.JSONDecodeError:  # nesting too deep or a number no float holds, as before
        raise ApiError(400, "malformed_json", "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _field_error("data", "not an object")
    return data


def _session_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON_TYPE)


async def create_session(request: web.Request) -> web.Response:
    body = await read_body(request, SessionCreate, _field_error)
    session = await _manager(request).create(_data(body.data), body.ttl_seconds)
    return _session_response(session.json_bytes(), 201)


async def get_session(request: web.Request) -> web.Response:
    session = await _manager(request).get(request.match_info["id"])
    return _session_response(session.json_bytes())


def held_session(request: web.Request) -> web.Response | None:
    """`get_session`'s synchronous first try (see `exporter.web.handling.instrumented`): the
    hottest request, a session the memory tier holds decoded, answered without a coroutine."""
    session = get_runtime(request).sessions.manager.get_held(request.match_info["id"])
    if session is None:
        return None
    return web.Response(body=session.json_bytes(), content_type=JSON_TYPE)


async def update_session(request: web.Request) -> web.Response:
    body = await read_body(request, SessionUpdate, _field_error)
    session = await _manager(request).update(
        request.match_info["id"], _data(body.data), body.ttl_seconds
    )
    return _session_response(session.json_bytes())


async def delete_session(request: web.Request) -> web.Response:
    await _manager(request).delete(request.match_info["id"])
    return web.Response(status=204)


async def session_access(request: web.Request) -> web.Response:
    runtime = get_runtime(request)
    session_id = request.match_info["id"]
    if not await runtime.sessions.manager.exists(session_id):
        raise SessionNotFound(f"session {session_id!r} not found")
    fleet = fleet_scope(request)
    if fleet and runtime.fleet is None:
        raise ApiError(
            400, "fleet_disabled", "scope=fleet needs --redis-url and --fleet-publish on"
        )
    access = (
        await _fleet_access(runtime, session_id)
        if fleet
        else runtime.sessions.manager.access.view(session_id)
    )
    body = SessionAccess(
        id=session_id,
        access=access,
        figma=runtime.figma.manager.session_usage(session_id),
        scope="fleet" if fleet else "replica",
    )
    return payload_response(body)


async def _fleet_access(runtime: Runtime, session_id: str) -> dict[str, Any] | None:
    """The session's counts summed over replicas: what Redis holds plus this replica's unsent
    ones. A lookup the user asked for, so one HGETALL here (never on the read path)."""
    assert runtime.fleet is not None and runtime.sessions.redis is not None
    counters = runtime.fleet.counters
    try:
        async with asyncio.timeout(runtime.fleet.timeout):
            raw: Any = await runtime.sessions.redis.hgetall(counters.key(session_id))
    except Exception:
        raise ApiError(
            503,
            "store_unavailable",
            "Redis did not answer: the fleet's counts are unknown (scope=replica still answers)",
            {"Retry-After": "1"},
        ) from None
    stored = {_text(k): _text(v) for k, v in (raw or {}).items()}
    return fleet_access(stored, counters.unsent(session_id))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
