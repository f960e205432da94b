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


class JournalFull(StoreBusy):
    """The outage journal holds as many entries or bytes as it may: the write is refused (503 +
    Retry-After) before it is acknowledged, never accepted and dropped later."""

    code = "store_busy"


class WritesRefused(StoreUnavailable):
    """Redis answers but refuses writes (`reason`: readonly, oom, misconf, noauth): reads it
    answers are still served; writes are journalled as in an outage."""

    code = "writes_refused"

    def __init__(self, reason: str, retry_after: float = 1.0) -> None:
        super().__init__(f"Redis refuses writes ({reason})", retry_after)
        self.reason = reason


class JournalLocked(ExporterError):
    """Another process holds the journal directory: two processes must never share one."""

    code = "journal_locked"


class StoreFull(ExporterError):
    """The memory tier is full of entries it may not evict (sessions it holds the only copy of):
    the write is refused with 507 instead of evicting an acknowledged one."""

    code = "store_full"


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
