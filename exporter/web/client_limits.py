"""The server's defence against slow and greedy clients: deadlines and connection caps, with the
metric and the log line that say when they bite.

aiohttp reads a request head for as long as the client takes (its keep-alive timer, 3630 s by
default, is the only bound), and a body shorter than its Content-Length for as long as the
connection lasts. So each connection gets two deadlines of its own
(`exporter.web.request_handler` arms them):

- `--web-header-timeout`: from the first byte of a request to the end of its head; a TLS
  handshake gets as long. Too slow: `408`, closed.
- `--web-body-timeout`: from the end of the head to the end of the body. Too slow: the handler's
  read fails, the answer is `408`, the connection closes.

and `ConnectionGuard` caps the connections per client address and in total (see there). Each
time one of these bites, `session_exporter_http_connections_dropped_total{reason}` counts it and a
warning says so, at most once a minute per reason (a slow-loris makes thousands).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Generic, TypeVar

from exporter.core.metrics import CONNECTION_DROP_REASONS, Metrics
from exporter.core.settings import Settings
from exporter.web.connection_guard import Admission, ConnectionGuard, auto_max_connections
from exporter.web.throttled_log import ThrottledLog

log = logging.getLogger("exporter.http")

C = TypeVar("C")

_MESSAGES = {
    "header_timeout": "closed a connection from %s: request head not complete within %g s"
    " (--web-header-timeout)",
    "body_timeout": "closed a connection from %s: request body not complete within %g s"
    " (--web-body-timeout)",
    "client_limit": "refused a connection from %s: it already holds %d"
    " (--web-max-connections-per-client)",
    "total_limit": "closed or refused a connection from %s: %d connections open"
    " (--web-max-connections; the address holding the most makes room)",
}


@dataclass(frozen=True, slots=True)
class ClientLimits:
    header_timeout: float
    body_timeout: float
    max_connections: int
    max_per_client: int  # 0: no limit

    @classmethod
    def from_settings(cls, settings: Settings, open_files_limit: int) -> ClientLimits:
        total = settings.web_max_connections or auto_max_connections(open_files_limit)
        return cls(
            header_timeout=settings.web_header_timeout,
            body_timeout=settings.web_body_timeout,
            max_connections=total,
            max_per_client=settings.web_max_connections_per_client,
        )


class ServerProtection(Generic[C]):
    """Shared by every connection of one server: the limits, the guard, the metric and the log."""

    def __init__(self, limits: ClientLimits, metrics: Metrics) -> None:
        self.limits = limits
        self.guard = ConnectionGuard[C](
            max_connections=limits.max_connections, max_per_client=limits.max_per_client
        )
        self._dropped = {
            reason: metrics.http_connections_dropped.labels(reason)
            for reason in CONNECTION_DROP_REASONS
        }
        self._logs = {reason: ThrottledLog(log) for reason in CONNECTION_DROP_REASONS}
        metrics.http_connections.set_function(lambda: self.guard.open)
        metrics.http_max_connections.set(limits.max_connections)

    def admit(self, connection: C, address: str) -> Admission[C]:
        """The guard's decision; the caller closes whom it names and reports it (`dropped`)."""
        return self.guard.admit(connection, address)

    def dropped(self, reason: str, address: str) -> None:
        """Count and (at most once a minute per reason) log a connection we closed or refused."""
        self._dropped[reason].inc()
        detail: float = {
            "header_timeout": self.limits.header_timeout,
            "body_timeout": self.limits.body_timeout,
            "client_limit": self.limits.max_per_client,
            "total_limit": self.guard.open,
        }[reason]
        self._logs[reason].log(_MESSAGES[reason], address, detail)
