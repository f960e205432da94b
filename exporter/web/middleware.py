"""One middleware for all request instrumentation and error rendering (one layer is cheaper
than two).

Per request it reads the matched resource (an app-lifetime object), the method and the status, and
finds the pre-bound metric children through three plain dict lookups: no label strings, `str()` or
tuples are built once a (route, method, status) has been seen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.typedefs import Middleware
from aiohttp.web import AbstractResource

from exporter.errors import (
    ExporterError,
    InvalidRequest,
    SessionNotFound,
    StoreFull,
    StoreUnavailable,
    UpstreamError,
    UpstreamInvalid,
    UpstreamNotFound,
    UpstreamTimeout,
    UpstreamUnavailable,
    WritesRefused,
)
from exporter.fast_metrics import CounterChild
from exporter.metrics import Metrics
from exporter.web.responses import ApiError, error_body, json_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNMATCHED = "unmatched"
_perf_counter = time.perf_counter


def route_template(request: web.Request) -> str:
    """The route's template (`/api/sessions/{id}`), never the raw path: labels stay bounded."""
    return _template(request.match_info.route.resource)


def _template(resource: AbstractResource | None) -> str:
    return resource.canonical if resource is not None else UNMATCHED


class _RouteChildren:
    """The children of one (route template, method): its duration and a counter per status."""

    __slots__ = ("_counter", "_method", "_route", "observe", "statuses")

    def __init__(self, metrics: Metrics, route: str, method: str) -> None:
        self._counter = metrics.http_requests
        self._route = route
        self._method = method
        self.observe = metrics.http_request_duration.labels(route, method).observe
        self.statuses: dict[int, CounterChild] = {}

    def status(self, status: int) -> CounterChild:
        child = self.statuses[status] = self._counter.labels(self._route, self._method, str(status))
        return child


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


class RequestMetrics:
    """Caches label children per resource, method and status so each is looked up once.

    Keyed by the matched resource object, not by its template string: resources live as long as
    the app (unmatched requests all map to None), so the cache stays bounded like the labels.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._routes: dict[AbstractResource | None, dict[str, _RouteChildren]] = {}

    def observe(
        self, resource: AbstractResource | None, method: str, status: int, seconds: float
    ) -> None:
        methods = self._routes.get(resource)
        if methods is None:
            methods = self._routes[resource] = {}
        route = methods.get(method)
        if route is None:
            # The method is the client's raw token: anything unusual shares one series.
            label = method if method in HTTP_METHODS else "other"
            route = methods.get(label)
            if route is None:
                route = methods[label] = _RouteChildren(self._metrics, _template(resource), label)
        route.observe(seconds)
        counter = route.statuses.get(status)
        if counter is None:
            counter = route.status(status)
        counter.value += 1


def exception_response(exc: BaseException) -> web.Response:
    """Render any exception as a JSON error; unknown ones become a 500 without details."""
    if isinstance(exc, ApiError):
        return exc.response()
    if isinstance(exc, web.HTTPException):
        code = "body_too_large" if exc.status == 413 else exc.reason.lower().replace(" ", "_")
        return json_response(error_body(code, exc.text or exc.reason), exc.status)
    if isinstance(exc, ExporterError):
        return _exporter_error_response(exc)
    log.exception("unhandled error", exc_info=exc)
    return json_response(error_body("internal", "internal server error"), 500)


def payload_error_response(request: web.Request, exc: web.RequestPayloadError) -> web.Response:
    """A body aiohttp could not decode: the client's fault, answered without a traceback.

    The body is marked finished so aiohttp does not read on after the answer (it would meet the
    same error and log it as unhandled); the connection closes, since the rest of it is unusable.
    """
    request.content.feed_eof()
    if isinstance(exc.__cause__, ContentEncodingError):
        code, message = "bad_content_encoding", "request body does not match its Content-Encoding"
    else:
        code, message = "bad_body", "request body could not be read"
    response = json_response(error_body(code, message), 400)
    response.force_close()
    return response


def _exporter_error_response(exc: ExporterError) -> web.Response:
    if isinstance(exc, SessionNotFound):
        return json_response(error_body("not_found", str(exc)), 404)
    if isinstance(exc, InvalidRequest):
        return json_response(error_body(exc.code, str(exc)), 400)
    if isinstance(exc, StoreUnavailable):
        # A write refused by Redis during its refusal is journalled, never surfaced; a
        # `writes_refused` reaching here is a read it refused too (noauth): unavailable.
        code = "unavailable" if isinstance(exc, WritesRefused) else exc.code
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
        return json_response(error_body(code, str(exc)), 503, headers)
    if isinstance(exc, StoreFull):
        return json_response(error_body(exc.code, str(exc)), 507)
    if isinstance(exc, UpstreamError):
        return _upstream_response(exc)
    log.error("unexpected %s: %s", type(exc).__name__, exc)
    return json_response(error_body(exc.code, str(exc)), 500)


def _upstream_response(exc: UpstreamError) -> web.Response:
    status = 502
    headers: dict[str, str] = {}
    if isinstance(exc, UpstreamTimeout):
        status = 504
    elif isinstance(exc, UpstreamNotFound):
        status = 404
    elif isinstance(exc, UpstreamInvalid):
        status = 400
    elif isinstance(exc, UpstreamUnavailable) or exc.status == "429":
        status = 503
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    body = error_body(exc.code, str(exc))
    body["error"]["upstream"] = exc.service
    return json_response(body, status, headers)


def instrumentation_middleware(metrics: Metrics) -> Middleware:
    observe = RequestMetrics(metrics).observe

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = _perf_counter()
        try:
            response = await handler(request)
        except web.RequestPayloadError as exc:
            response = payload_error_response(request, exc)
        except Exception as exc:  # every error leaves as JSON, never as a traceback
            response = exception_response(exc)
        observe(
            request.match_info.route.resource,
            request.method,
            response.status,
            _perf_counter() - started,
        )
        return response

    return middleware
