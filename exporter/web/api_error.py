"""JSON answers and the API error type (raised by handlers, rendered by `handling`).

Imports nothing of ours, so any web module may use it: `keys` raising `ApiError` and `web_auth`
answering in JSON through `responses` made import circles.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

JSON_TYPE = "application/json"


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type=JSON_TYPE, headers=headers
    )


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class ApiError(Exception):
    """A client-visible error: HTTP status, a machine-readable code and a message."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


class RequestBodyTimeout(TimeoutError):
    """The request body did not arrive within `--web-body-timeout` (set on the body stream by
    `exporter.web.request_handler`, raised by the handler's read, answered 408)."""
