"""The project's exception types. Imports nothing of ours, so every layer may raise them."""

from __future__ import annotations

from dataclasses import dataclass


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


# Why a stored value could not be read (the bounded `cause` label of
# `session_exporter_sessions_unreadable_total`): not our `<version>:<expiry>:<kind>` header, our
# header before bytes that are not JSON, or JSON that is not a session document.
UNREADABLE_CAUSES = ("header", "json", "shape")


class UnreadableValue(ValueError):
    """A stored value this program cannot read: damaged, or written under our key prefix by some
    other program. The message never quotes the value (it may hold a user's session)."""

    def __init__(self, cause: str, detail: str) -> None:
        assert cause in UNREADABLE_CAUSES, cause
        super().__init__(f"unreadable stored value ({cause}): {detail}")
        self.cause = cause


class SessionUnreadable(SessionNotFound):
    """A session whose stored value is unreadable (`UnreadableValue`): answered as an unknown
    session, never a 500; counted by `cause` and logged once per cause."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


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


class JournalUnwritable(StoreBusy):
    """The outage journal's disk refused the write (full, failing, read-only): refused (503 +
    Retry-After) before it is acknowledged; writes are taken again once the disk takes them."""

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


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """How one kind of exception is counted and answered."""

    label: str  # the bounded `error` label of the operation metrics
    status: int  # the HTTP status of its JSON answer (ExporterErrors only; others are 500)
    code: str | None = None  # the JSON `code` instead of the exception's own


# The one mapping from exception to metric label and HTTP status; the first row the exception
# is an instance of wins, so subclasses come before their bases.
ERROR_KINDS: tuple[tuple[type[BaseException], ErrorKind], ...] = (
    # A wrong file key or a node Figma cannot render is the caller's, like an unknown session id.
    (SessionNotFound, ErrorKind("not_found", 404)),
    (UpstreamNotFound, ErrorKind("not_found", 404)),
    (StoreBusy, ErrorKind("busy", 503)),  # JournalFull, JournalUnwritable too
    (UpstreamInvalid, ErrorKind("invalid", 400)),
    (InvalidRequest, ErrorKind("invalid", 400)),
    (StoreTimeout, ErrorKind("timeout", 503)),
    (UpstreamTimeout, ErrorKind("timeout", 504)),
    # A write refused by Redis during its refusal is journalled, never surfaced; a
    # `writes_refused` answered is a read it refused too (noauth): unavailable.
    (WritesRefused, ErrorKind("unavailable", 503, code="unavailable")),
    (StoreUnavailable, ErrorKind("unavailable", 503)),
    (UpstreamUnavailable, ErrorKind("upstream", 503)),
    (UpstreamError, ErrorKind("upstream", 502)),  # 503 when the upstream said 429: see below
    (StoreFull, ErrorKind("full", 507)),
    (ExporterError, ErrorKind("internal", 500)),
    (TimeoutError, ErrorKind("timeout", 500)),
    (ValueError, ErrorKind("invalid", 500)),
    (TypeError, ErrorKind("invalid", 500)),
)
_INTERNAL = ErrorKind("internal", 500)


def error_kind(exc: BaseException) -> ErrorKind:
    """The row of `ERROR_KINDS` for this exception (internal/500 when none matches)."""
    kind = next((kind for cls, kind in ERROR_KINDS if isinstance(exc, cls)), _INTERNAL)
    if isinstance(exc, UpstreamError) and exc.status == "429" and kind.status == 502:
        # Rate-limited: the upstream is fine but refuses us for now, like a busy store.
        return ErrorKind(kind.label, 503)
    return kind
