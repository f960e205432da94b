"""Figma routes: files and nodes through the cache, screenshots from the API or the MCP server.

Input is validated here (400 JSON, nothing called); upstream failures are typed errors that the
request handling renders as 502/503/504 JSON naming the upstream.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exporter.upstreams.figma_manager import (
    MAX_DEPTH,
    check_file_key,
    check_node_id,
    check_node_ids,
    check_screenshot,
)
from exporter.web.keys import get_runtime
from exporter.web.responses import ApiError, json_response, read_json_object

TRUE_VALUES = ("1", "true", "yes")
FALSE_VALUES = ("0", "false", "no", "")


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


def _checked(check: Any, *args: Any) -> Any:
    try:
        return check(*args)
    except ValueError as exc:
        raise _invalid(str(exc)) from None


def _session(request: web.Request, body: dict[str, Any] | None = None) -> str | None:
    value = request.query.get("session")
    if value is None and body is not None:
        value = body.get("session")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
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
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_DEPTH:
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


def _screenshot_args(body: dict[str, Any]) -> dict[str, Any]:
    """The validated screenshot request: file_key, node_id, source, format, scale."""
    file_key, node_id = body.get("file_key"), body.get("node_id")
    if not isinstance(file_key, str):
        raise _invalid("file_key is required (a string)")
    if not isinstance(node_id, str):
        raise _invalid("node_id is required (a string such as 1:2)")
    source, format, scale = (
        body.get("source", "api"),
        body.get("format", "png"),
        body.get("scale", 1),
    )
    if not isinstance(source, str) or not isinstance(format, str):
        raise _invalid("source and format must be strings")
    _checked(check_screenshot, source, format, scale)
    return {
        "file_key": _checked(check_file_key, file_key),
        "node_id": _checked(check_node_id, node_id),
        "source": source,
        "format": format,
        "scale": float(scale),
    }


async def post_screenshot(request: web.Request) -> web.Response:
    download = _flag(request, "download")
    body = await read_json_object(request)
    args = _screenshot_args(body)
    session_id = _session(request, body)
    manager = get_runtime(request).figma.manager
    shot = await manager.screenshot(
        args["file_key"],
        args["node_id"],
        source=args["source"],
        format=args["format"],
        scale=args["scale"],
        session_id=session_id,
    )
    if not download:
        return json_response(shot.as_dict())
    extension = args["format"]
    filename = f"{shot.node_id.replace(':', '-').replace(';', '_')}.{extension}"
    headers = {
        "Content-Disposition": f'inline; filename="{filename}"',
        "X-Screenshot-Sha256": shot.sha256,
        "X-Screenshot-Cached": "true" if shot.cached else "false",
    }
    content_type = shot.content_type.split(";", 1)[0].strip() or "application/octet-stream"
    return web.Response(body=shot.data, content_type=content_type, headers=headers)
