"""The HTTP server around the app: its connections (`exporter.web.request_handler`), the access
log, TLS, and the listening socket.

The access log never shows a session id (they are bearer credentials): the path segment after
`/api/sessions/` is replaced by `sha256:` and the first 12 hex digits of its SHA-256, which
still lets an operator follow one session (hash the id they hold) without exposing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import resource
import ssl
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from exporter.web.client_limits import ClientLimits, ServerProtection
from exporter.web.keys import METRICS, SETTINGS
from exporter.web.request_handler import ExporterRequestHandler, ExporterServer

access_log = logging.getLogger("exporter.access")
SESSIONS_PREFIX = "/api/sessions/"
BACKLOG = 1024  # pending connections the kernel queues (capped by net.core.somaxconn)


def loggable_path(path: str) -> str:
    """`path` with a session id replaced by a short digest of it (see the module docstring).

    >>> loggable_path("/api/sessions/Zx8f_secret-id/metrics")
    '/api/sessions/sha256:c4cdf0ee764a/metrics'
    """
    if not path.startswith(SESSIONS_PREFIX) or len(path) == len(SESSIONS_PREFIX):
        return path
    session_id, slash, rest = path[len(SESSIONS_PREFIX) :].partition("/")
    digest = hashlib.sha256(session_id.encode()).hexdigest()[:12]
    return f"{SESSIONS_PREFIX}sha256:{digest}{slash}{rest}"


class AccessLogger(AbstractAccessLogger):
    """One record per request with structured fields; the path without its query string (a
    query may carry a session id or token) and without a session id (`loggable_path`)."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        path = loggable_path(request.path)
        self.logger.info(
            "%s %s %d",
            request.method,
            path,
            response.status,
            extra={
                "method": request.method,
                "path": path,
                "status": response.status,
                "duration_ms": round(time * 1000, 3),
                "remote": request.remote,
                "user_agent": request.headers.get("User-Agent", "")[:200],
            },
        )


class ExporterRunner(web.AppRunner):
    """AppRunner whose connections are `ExporterRequestHandler`s sharing one protection."""

    def __init__(
        self,
        app: web.Application,
        *,
        protection: ServerProtection[ExporterRequestHandler] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self.protection = protection

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = ExporterServer  # same state; only the handler factory differs
        assert isinstance(server, ExporterServer)
        server.protection = self.protection
        return server


def open_files_limit() -> int:
    """The soft limit of open file descriptors (RLIMIT_NOFILE)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_open_files_limit() -> int:
    """Raise the soft open-files limit to the hard one (as Go programs do at start-up), so the
    connection cap can be generous; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):  # not permitted here: keep what we have
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return open_files_limit()


def make_runner(app: web.Application, *, access: bool = False, **kwargs: Any) -> ExporterRunner:
    """The runner `serve` and the tests use, with the app's client limits; `access` turns on the
    access log."""
    limits = ClientLimits.from_settings(app[SETTINGS], open_files_limit())
    protection = ServerProtection[ExporterRequestHandler](limits, app[METRICS])
    if access:
        kwargs |= {"access_log": access_log, "access_log_class": AccessLogger}
    else:
        kwargs["access_log"] = None
    return ExporterRunner(app, protection=protection, **kwargs)


class ExporterSite(web.TCPSite):
    """TCPSite with a longer listen backlog and a TLS handshake bounded like a request head.

    aiohttp's TCPSite does not pass `ssl_handshake_timeout` (asyncio's default is 60 s, during
    which a handshake holds a descriptor that no connection cap counts), so `start` is
    aiohttp's own with that one argument more."""

    __slots__ = ("_handshake_timeout",)

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        handshake_timeout: float,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, backlog=BACKLOG)
        self._handshake_timeout = handshake_timeout

    async def start(self) -> None:
        if self._ssl_context is None:
            return await super().start()
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            server,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
            ssl_handshake_timeout=self._handshake_timeout,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


def site(
    runner: web.BaseRunner,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    handshake_timeout: float = 10.0,
) -> web.TCPSite:
    return ExporterSite(
        runner, host, port, ssl_context=ssl_context, handshake_timeout=handshake_timeout
    )
