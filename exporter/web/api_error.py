"""The API error type: raised by handlers, rendered as JSON by the middleware.

Imports nothing of ours, so any web module may raise it (`keys` did, through `responses`, which
made an import circle).
"""

from __future__ import annotations

from collections.abc import Mapping


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
