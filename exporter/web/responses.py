"""JSON request bodies, read and checked (orjson: decoding off the hot path's budget)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from exporter.web.api_error import ApiError, error_body, json_response
from exporter.web.keys import SETTINGS

# The response helpers live in api_error, a leaf (keys and web_auth import it without a circle);
# the route modules still import them from here.
__all__ = ["ApiError", "error_body", "json_response", "read_json_object"]

# What aiohttp decodes itself; it passes any other token through as if it were identity.
DECODED_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})


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
