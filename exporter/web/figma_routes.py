"""Figma routes: files and nodes through the cache, screenshots from the API or the MCP server.

Input is validated here (400 JSON, nothing called); upstream failures are typed errors that the
request handling renders as 502/503/504 JSON naming the upstream.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exporter.core.metrics import SCREENSHOT_SOURCES
from exporter.upstreams.figma_manager import (
    FORMATS,
    MAX_DEPTH,
    SCALE_RANGE,
    check_file_key,
    check_node_id,
    check_node_ids,
    check_screenshot,
)
from exporter.web.bodies import Screenshot, ScreenshotRequest
from exporter.web.keys import get_runtime
from exporter.web.operation import Named
from exporter.web.responses import ApiError, json_response, payload_response, read_body

# Files and nodes answer Figma's own JSON, passed through as it came (and as it was cached).
FIGMA_DOCUMENT = Named(
    "FigmaDocument", {"type": "object", "description": "the Figma REST API's JSON, passed through"}
)
TRUE_VALUES = ("1", "true", "yes")
FALSE_VALUES = ("0", "false", "no", "")


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


def _checked(check: Any, *args: Any) -> Any:
    try:
        return check(*args)
    except ValueError as exc:
        raise _invalid(str(exc)) from None


def _session(request: web.Request) -> str | None:
    value = request.query.get("session")
    if value is None:
        return None
    if not value:
        raise _invalid("session must be a session id")
    return value


def _ids(raw: str | None, *, required: bool) -> list[str] | None:
    if raw is None or not raw.strip():
        if required:
            raise _invalid("ids is required: a comma-separated list of node ids such as 1:2,1:3")
        return None
    ids = [part.strip() for part in raw.split(",") if part.strip()]
    return list(_checked(check_node_ids, ids))


def _depth(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_DEPTH:
        raise _invalid(f"depth must be an integer from 1 to {MAX_DEPTH}")
    return int(raw)


def _flag(request: web.Request, name: str) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return False
    if raw.lower() in TRUE_VALUES:
        return True
    if raw.lower() in FALSE_VALUES:
        return False
    raise _invalid(f"{name} must be 1 or 0")


async def get_file(request: web.Request) -> web.Response:
    file_key = _checked(check_file_key, request.match_info["file_key"])
    depth = _depth(request.query.get("depth"))
    ids = _ids(request.query.get("ids"), required=False)
    session_id = _session(request)
    manager = get_runtime(request).figma.manager
    document = await manager.get_file(file_key, session_id=session_id, depth=depth, ids=ids)
    return json_response(document)


async def get_nodes(request: web.Request) -> web.Response:
    file_key = _checked(check_file_key, request.match_info["file_key"])
    ids = _ids(request.query.get("ids"), required=True)
    assert ids is not None
    session_id = _session(request)
    manager = get_runtime(request).figma.manager
    document = await manager.get_nodes(file_key, ids, session_id=session_id)
    return json_response(document)


# What a refused field of the screenshot body answers (the same words as before the types).
_SHOT_ERRORS = {
    "file_key": "file_key must be 1-128 letters or digits",
    "source": f"source must be one of {', '.join(SCREENSHOT_SOURCES)}",
    "format": f"format must be one of {', '.join(FORMATS)}",
    "scale": f"scale must be a number from {SCALE_RANGE[0]} to {SCALE_RANGE[1]:g}",
    "session": "session must be a session id",
}
_NOT_A_STRING = {
    "file_key": "file_key is required (a string)",
    "node_id": "node_id is required (a string such as 1:2)",
    "source": "source and format must be strings",
    "format": "source and format must be strings",
}


def _shot_error(field: str, reason: str) -> ApiError:
    # "Object missing required field `x`", "Expected `str`, got `int`" (not a pattern miss)
    missing = "missing" in reason or ", got `" in reason
    if missing and field in _NOT_A_STRING:
        return _invalid(_NOT_A_STRING[field])
    return _invalid(_SHOT_ERRORS.get(field, _NOT_A_STRING.get(field, reason)))


async def post_screenshot(request: web.Request) -> web.Response:
    download = _flag(request, "download")
    body = await read_body(request, ScreenshotRequest, _shot_error)
    node_id = _checked(check_node_id, body.node_id)
    # The one rule across two fields, checked before anything is called.
    _checked(check_screenshot, body.source, body.format, body.scale)
    session_id = _session(request) or body.session
    manager = get_runtime(request).figma.manager
    shot = await manager.screenshot(
        body.file_key,
        node_id,
        source=body.source,
        format=body.format,
        scale=body.scale,
        session_id=session_id,
    )
    if not download:
        return payload_response(
            Screenshot(
                node_id=shot.node_id,
                source=shot.source,  # type: ignore[arg-type]
                content_type=shot.content_type,
                size_bytes=shot.size_bytes,
                sha256=shot.sha256,
                cached=shot.cached,
                duration_ms=round(shot.duration_ms, 3),
            )
        )
    extension = body.format
    filename = f"{shot.node_id.replace(':', '-').replace(';', '_')}.{extension}"
    headers = {
        "Content-Disposition": f'inline; filename="{filename}"',
        "X-Screenshot-Sha256": shot.sha256,
        "X-Screenshot-Cached": "true" if shot.cached else "false",
    }
    content_type = shot.content_type.split(";", 1)[0].strip() or "application/octet-stream"
    return web.Response(body=shot.data, content_type=content_type, headers=headers)
