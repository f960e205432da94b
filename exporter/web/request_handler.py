"""The connection protocol: aiohttp's RequestHandler with JSON answers to malformed requests and
per-connection deadlines for slow clients.

aiohttp's HTTP parser answers malformed requests (a URL over 8 KiB, a bad Content-Length, an
invalid method token, a non-UTF-8 path) before any handler runs, as plain text that echoes the
input, and logs a traceback for each. `RequestHandler.handle_error` is aiohttp's documented hook
for that answer; `ExporterRequestHandler` answers with our JSON error with a fixed message, and
logs one warning line.

It also enforces `exporter.web.client_limits` (why, and the settings, are described there): it
reports each connection to the guard (admitted, busy with a request, waiting again, closed), arms
a deadline when a request head starts and another when a body is still to come, and closes what
the guard or a deadline says must go. aiohttp has no hook for "a request head has started", so
`data_received` is wrapped: after aiohttp's parser has taken the bytes, a grown request count
means heads were completed; otherwise the bytes belong to a head (when no body is awaited).
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    ContentEncodingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from exporter.web.api_error import RequestBodyTimeout, error_body, json_response
from exporter.web.client_limits import ServerProtection

log = logging.getLogger("exporter.http")
# Deadlines end at a random point of their last tenth: connections opened together (a flood, or a
# burst of clients after a restart) then do not all time out in the same event-loop iteration.
DEADLINE_SPREAD = 0.1
_jitter = random.Random()  # its own: the global generator's state belongs to the application


def _spread(seconds: float) -> float:
    return seconds * (1.0 - DEADLINE_SPREAD * _jitter.random())


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


def _timeout_response() -> bytes:
    """The raw 408 for a request head that came too slowly (no request object exists yet)."""
    body = orjson.dumps(error_body("request_timeout", "request head not received in time"))
    head = (
        "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


HEAD_TIMEOUT_RESPONSE = _timeout_response()


class ExporterRequestHandler(RequestHandler):
    """A RequestHandler whose parser-error answers are JSON (with a one-line log), and which
    keeps its connection within `ServerProtection`'s limits when it has one."""

    def __init__(
        self,
        manager: Server,
        *,
        protection: ServerProtection[ExporterRequestHandler] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, **kwargs)
        self._protection = protection
        self.address = "unknown"
        self._head_deadline: asyncio.TimerHandle | None = None
        self._body_deadline: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None  # a request body still to come
        self._refused = False

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

    # -- slow and greedy clients -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._protection is not None:
            peer = transport.get_extra_info("peername")
            self.address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
            admission = self._protection.admit(self, self.address)
            if admission.evict is not None:
                admission.evict.drop("total_limit")
            if not admission.admitted:  # closed before aiohttp sets anything up: cheap
                self._protection.dropped(admission.reason or "total_limit", self.address)
                self._refused = True
                transport.close()
                return
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            return  # aiohttp never knew this connection
        self._cancel_deadlines()
        if self._protection is not None:
            self._protection.guard.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        heads = self._request_count
        super().data_received(data)
        if self._protection is None or self._force_close or self._close:
            return
        if self._request_count != heads:  # one or more request heads complete
            self._cancel(self._head_deadline)
            self._head_deadline = None
            self._protection.guard.busy(self)
            self._await_body(self._messages[-1][1] if self._messages else None)
        elif self._body is not None:  # more of a body
            if self._body.is_eof():
                self._await_body(None)
        elif self._head_deadline is None:  # the start of a request head
            loop = asyncio.get_running_loop()
            self._head_deadline = loop.call_later(
                _spread(self._protection.limits.header_timeout), self._head_too_slow
            )

    def log_access(
        self, request: BaseRequest, response: web.StreamResponse, time: float | None
    ) -> None:
        """Called once a response is written (a sync hook: no coroutine more per request)."""
        super().log_access(request, response, time)
        if self._protection is not None and not self._messages:
            self._protection.guard.waiting(self)  # answered: idle, may make room again

    def drop(self, reason: str) -> None:
        """Close this connection now for `reason` (counted and logged)."""
        if self._protection is not None:
            self._protection.dropped(reason, self.address)
        self.force_close()

    def _await_body(self, payload: StreamReader | None) -> None:
        self._cancel(self._body_deadline)
        self._body_deadline = None
        self._body = payload if payload is not None and not payload.is_eof() else None
        if self._body is not None and self._protection is not None:
            loop = asyncio.get_running_loop()
            self._body_deadline = loop.call_later(
                _spread(self._protection.limits.body_timeout), self._body_too_slow, self._body
            )

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.transport is None:
            return
        if not self._request_in_progress:  # nothing of ours is being written: say why
            self.transport.write(HEAD_TIMEOUT_RESPONSE)
        self.drop("header_timeout")

    def _body_too_slow(self, payload: StreamReader) -> None:
        self._body_deadline = None
        if payload.is_eof() or self.transport is None or self._protection is None:
            return
        self._protection.dropped("body_timeout", self.address)
        # The handler's read raises it (answered 408); then the connection closes, since the
        # rest of the body would be read as a new request.
        payload.set_exception(RequestBodyTimeout())
        self.close()

    def _cancel_deadlines(self) -> None:
        self._cancel(self._head_deadline)
        self._cancel(self._body_deadline)
        self._head_deadline = self._body_deadline = None
        self._body = None

    @staticmethod
    def _cancel(handle: asyncio.TimerHandle | None) -> None:
        if handle is not None:
            handle.cancel()


class ExporterServer(Server):
    """aiohttp's Server, making `ExporterRequestHandler`s that share one `ServerProtection`."""

    protection: ServerProtection[ExporterRequestHandler] | None = None

    def __call__(self) -> RequestHandler:
        return ExporterRequestHandler(
            self, loop=self._loop, protection=self.protection, **self._kwargs
        )
