"""JSON responses; orjson keeps serialisation off the hot path's budget."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from exporter.web.api_error import ApiError
from exporter.web.keys import SETTINGS

# ApiError lives in api_error (no circle with keys); the route modules still import it from here.
__all__ = ["ApiError", "error_body", "json_response", "read_json_object"]

JSON_TYPE = "application/json"
# What aiohttp decodes itself; it passes any other token through as if it were identity.
DECODED_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type=JSON_TYPE, headers=headers
    )


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or an ApiError (400 malformed, 413 too large)."""
    limit = request.app[SETTINGS].max_body_bytes
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in DECODED_ENCODINGS:
        message = "Content-Encoding must be gzip, deflate or identity"
        raise ApiError(415, "unsupported_content_encoding", message)
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "body_too_large", f"request body exceeds {limit} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "body_too_large", f"request body exceeds {limit} bytes") from None
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise ApiError(400, "malformed_json", "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "request body must be a JSON object")
    return body
