"""The HTTP server around the app: parser errors as JSON, the access log, TLS.

aiohttp's HTTP parser answers malformed requests (a URL over 8 KiB, a bad Content-Length, an
invalid method token, a non-UTF-8 path) before any handler runs, as plain text that echoes the
input, and logs a traceback for each. `RequestHandler.handle_error` is aiohttp's documented hook
for that answer; the runner below installs a handler whose answer is our JSON error with a fixed
message, and whose log is one warning line.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    ContentEncodingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from exporter.web.responses import error_body, json_response

log = logging.getLogger("exporter.http")
access_log = logging.getLogger("exporter.access")

URI_TOO_LONG = 414


def classify_parser_error(status: int, exc: BaseException | None) -> tuple[int, str, str]:
    """(status, code, message) for an error aiohttp's parser raised; never echoes the input."""
    if isinstance(exc, LineTooLong):
        return _line_too_long(exc)
    if isinstance(exc, BadHttpMethod):
        return 400, "bad_method", "invalid request method"
    if isinstance(exc, InvalidURLError):
        return 400, "bad_url", "invalid request target"
    if isinstance(exc, InvalidHeader):
        return 400, "bad_header", "invalid request header"
    if isinstance(exc, ContentEncodingError):  # br or zstd without their optional decoder
        return 415, "unsupported_content_encoding", "Content-Encoding not supported"
    if isinstance(exc, BadHttpMessage):
        return 400, "bad_request", "malformed HTTP request"
    if status >= 500:
        return 500, "internal", "internal server error"
    return status, "bad_request", "malformed HTTP request"


def _line_too_long(exc: LineTooLong) -> tuple[int, str, str]:
    """The request target is the over-long line that starts with `/` or a scheme (the C parser
    hands us the target itself) or that the pure-Python parser calls the status line; anything
    else is a header."""
    line = exc.args[0] if exc.args else b""
    head = bytes(line[:8]) if isinstance(line, bytes | bytearray) else str(line)[:8].encode()
    if head.startswith((b"/", b"http:", b"https:", b"*")) or str(line).startswith("Status line"):
        return URI_TOO_LONG, "uri_too_long", "request target too long"
    return 431, "header_too_long", "request header too long"


class JsonErrorRequestHandler(RequestHandler):
    """A RequestHandler whose parser-error answers are JSON and whose log is one line."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send an error")
        status, code, text = classify_parser_error(status, exc)
        if status >= 500:
            log.error("unhandled error answering %s", request.remote, exc_info=exc)
        else:  # the client's fault: one line, the exception class only (its text echoes input)
            # Non-HTTP bytes (TLS to the plain port, scanners) are noise: debug, as aiohttp does.
            level = logging.DEBUG if isinstance(exc, BadHttpMethod) else logging.WARNING
            log.log(
                level,
                "rejected malformed request from %s: %s (%s)",
                request.remote,
                code,
                type(exc).__name__ if exc else "unknown",
            )
        response = json_response(error_body(code, text), status)
        response.force_close()
        return response


class _JsonErrorServer(Server):
    def __call__(self) -> RequestHandler:
        return JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class ExporterRunner(web.AppRunner):
    """AppRunner whose connections use JsonErrorRequestHandler."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer  # same state; only the handler factory differs
        return server


class AccessLogger(AbstractAccessLogger):
    """One record per request with structured fields; the path without its query string (a
    query may carry a session id or token)."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        self.logger.info(
            "%s %s %d",
            request.method,
            request.path,
            response.status,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "duration_ms": round(time * 1000, 3),
                "remote": request.remote,
                "user_agent": request.headers.get("User-Agent", "")[:200],
            },
        )


def make_runner(app: web.Application, *, access: bool = False, **kwargs: Any) -> ExporterRunner:
    """The runner `serve` and the tests use; `access` turns on the access log."""
    if access:
        return ExporterRunner(app, access_log=access_log, access_log_class=AccessLogger, **kwargs)
    return ExporterRunner(app, access_log=None, **kwargs)


def site(
    runner: web.BaseRunner, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> web.TCPSite:
    return web.TCPSite(runner, host, port, ssl_context=ssl_context)
