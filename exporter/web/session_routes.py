"""The sessions API: POST/GET/PUT/DELETE /api/sessions[/{id}]."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exporter.errors import SessionNotFound
from exporter.sessions.manager import MAX_TTL, SessionManager, check_ttl
from exporter.web.keys import get_runtime
from exporter.web.responses import ApiError, json_response, read_json_object

JSON_TYPE = "application/json"


def _manager(request: web.Request) -> SessionManager:
    return get_runtime(request).sessions.manager


def _data(body: dict[str, Any], *, required: bool) -> dict[str, Any]:
    if "data" not in body:
        if required:
            raise ApiError(400, "invalid_data", "field 'data' (a JSON object) is required")
        return {}
    data = body["data"]
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_data", "field 'data' must be a JSON object")
    return data


def _ttl(body: dict[str, Any]) -> float | None:
    raw = body.get("ttl_seconds")
    if raw is None:
        return None
    try:
        return check_ttl(raw)
    except ValueError:
        raise ApiError(
            400,
            "invalid_ttl",
            f"'ttl_seconds' must be a number greater than 0 and at most {MAX_TTL:.0f}",
        ) from None


def _session_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON_TYPE)


async def create_session(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    session = await _manager(request).create(_data(body, required=False), _ttl(body))
    return _session_response(session.json_bytes(), 201)


async def get_session(request: web.Request) -> web.Response:
    # The hottest route: the response is built inline (no helper frame), from cached bytes.
    session = await get_runtime(request).sessions.manager.get(request.match_info["id"])
    return web.Response(body=session.json_bytes(), content_type=JSON_TYPE)


async def update_session(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    session = await _manager(request).update(
        request.match_info["id"], _data(body, required=True), _ttl(body)
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
    return json_response(
        {
            "id": session_id,
            "access": runtime.sessions.manager.access.view(session_id),
            "figma": runtime.figma.manager.session_usage(session_id),
        }
    )
