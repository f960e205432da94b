"""JSON request bodies, read and decoded into their msgspec types (the types validate them)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import msgspec
from aiohttp import web

from exporter.monitoring import payloads
from exporter.web.api_error import ApiError, error_body, json_response
from exporter.web.keys import SETTINGS

# The response helpers live in api_error, a leaf (keys and web_auth import it without a circle);
# the route modules still import them from here.
__all__ = [
    "ApiError",
    "FieldError",
    "error_body",
    "json_response",
    "payload_response",
    "read_body",
]

# What aiohttp decodes itself; it passes any other token through as if it were identity.
DECODED_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})

T = TypeVar("T")
# The route's answer to a body field its type refused: (field, msgspec's reason) -> the 400.
FieldError = Callable[[str, str], ApiError]
# msgspec names the field it refused: "... - at `$.scale`", "Object missing required field `x`".
_FIELD = re.compile(r"- at `\$\.(\w+)|missing required field `(\w+)`")


def payload_response(body: msgspec.Struct, status: int = 200) -> web.Response:
    """A typed body, encoded by msgspec: handing a Struct to orjson would cost a to_builtins
    copy first, about 3x the encode (`python -m bench encode`)."""
    return web.Response(body=payloads.encode(body), status=status, content_type="application/json")


def _malformed() -> ApiError:
    return ApiError(400, "malformed_json", "request body is not valid JSON")


def _not_an_object() -> ApiError:
    return ApiError(400, "invalid_body", "request body must be a JSON object")


async def _read(request: web.Request) -> bytes:
    limit = request.app[SETTINGS].max_body_bytes
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in DECODED_ENCODINGS:
        message = "Content-Encoding must be gzip, deflate or identity"
        raise ApiError(415, "unsupported_content_encoding", message)
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "body_too_large", f"request body exceeds {limit} bytes")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "body_too_large", f"request body exceeds {limit} bytes") from None


def decode_body(raw: bytes, type: type[T], field_error: FieldError) -> T:
    """`raw` decoded into `type`: 400 malformed_json, invalid_body (not an object), or the
    route's error for the field the type refused."""
    if not raw:
        raise _not_an_object()
    try:
        return msgspec.json.decode(raw, type=type)
    except msgspec.ValidationError as exc:
        reason = str(exc)
        if reason.startswith("Number out of range"):  # 1e400: no JSON number a parser keeps
            raise _malformed() from None
        match = _FIELD.search(reason)
        if match is None:  # the body itself: an array, a string, a number
            raise _not_an_object() from None
        raise field_error(match[1] or match[2], reason) from None
    except (msgspec.DecodeError, RecursionError):  # RecursionError: nesting deeper than C's stack
        raise _malformed() from None


async def read_body(request: web.Request, type: type[T], field_error: FieldError) -> T:
    """The request body as `type`, or an ApiError (400 malformed or refused, 413 too large,
    415 an encoding aiohttp does not decode)."""
    return decode_body(await _read(request), type, field_error)
