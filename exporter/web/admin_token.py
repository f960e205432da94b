"""The admin token: routes declared `admin` (`exporter.web.operation.Operation`) need
`Authorization: Bearer <--admin-token>` when one is configured, and are open when none is.

The route table states which routes these are, and `Route.served_handler` wraps exactly those with
`admin_only`, so the OpenAPI document's `security` and 401/403 answers and the check itself come
from the same declaration.
"""

from __future__ import annotations

import functools
import hmac

from aiohttp import web
from aiohttp.typedefs import Handler

from exporter.web.api_error import ApiError
from exporter.web.keys import SETTINGS

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="session-metrics-exporter"'}


def require_admin(request: web.Request) -> None:
    """Bearer admin token when one is configured: 401 without (or malformed), 403 when wrong."""
    token = request.app[SETTINGS].admin_token
    if token is None:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiError(
            401,
            "unauthorized",
            "this endpoint needs Authorization: Bearer <admin token>",
            CHALLENGE,
        )
    # Constant time, on bytes: a str compare_digest refuses non-ASCII input with a TypeError.
    if not hmac.compare_digest(presented.strip().encode(), token.encode()):
        raise ApiError(403, "forbidden", "the admin token is not valid")


def admin_only(handler: Handler) -> Handler:
    """`handler` behind `require_admin`."""

    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        require_admin(request)
        return await handler(request)

    return checked
