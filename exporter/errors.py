"""The project's exception types. Imports nothing of ours, so every layer may raise them."""

from __future__ import annotations


class ExporterError(Exception):
    """Base class: `code` is a short machine-readable word used in JSON errors and metric labels."""

    code = "internal"


class ConfigError(ExporterError):
    """An invalid setting; the message names it."""

    code = "invalid_config"

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"invalid setting {setting}: {message}")
        self.setting = setting


class SessionNotFound(ExporterError):
    code = "not_found"


class StoreUnavailable(ExporterError):
    """The backing store cannot answer; the caller should retry after `retry_after` seconds."""

    code = "unavailable"

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreTimeout(StoreUnavailable):
    code = "timeout"


class StoreBusy(StoreUnavailable):
    """No Redis connection became free in time: backpressure on a healthy Redis, not an outage
    (HTTP 503 `store_busy` for this request only; no failover)."""

    code = "store_busy"


class WritesRefused(StoreUnavailable):
    """Redis answers but refuses writes (`reason`: readonly, oom, misconf, noauth): reads it
    answers are still served; writes are journalled as in an outage."""

    code = "writes_refused"

    def __init__(self, reason: str, retry_after: float = 1.0) -> None:
        super().__init__(f"Redis refuses writes ({reason})", retry_after)
        self.reason = reason


class UpstreamError(ExporterError):
    """An upstream service (Figma API, MCP server) failed.

    `status` is the bounded status class used in metrics: 2xx, 4xx, 429, 5xx, timeout, error.
    `http_status` is the upstream's own HTTP status when there was one.
    """

    code = "upstream"

    def __init__(
        self,
        service: str,
        message: str,
        *,
        status: str = "error",
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.status = status
        self.http_status = http_status
        self.retry_after = retry_after


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"

    def __init__(self, service: str, message: str) -> None:
        super().__init__(service, message, status="timeout")


class UpstreamUnavailable(UpstreamError):
    """Not configured, unreachable, or its circuit is open."""

    code = "upstream_unavailable"


class UpstreamNotFound(UpstreamError):
    code = "upstream_not_found"


class UpstreamInvalid(UpstreamError):
    """The upstream refused the request itself (HTTP 400): the caller's input, not an outage."""

    code = "upstream_invalid"


class InvalidRequest(ExporterError, ValueError):
    """Input that an upstream's declared schema refuses (found only once the schema is known)."""

    code = "invalid_request"
