"""One middleware for all request instrumentation and error rendering (one layer is cheaper than two)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import Counter, Histogram

from exporter.errors import (
    ExporterError,
    SessionNotFound,
    StoreUnavailable,
    UpstreamError,
    UpstreamNotFound,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from exporter.metrics import Metrics
from exporter.web.responses import ApiError, error_body, json_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNMATCHED = "unmatched"


def route_template(request: web.Request) -> str:
    """The route's template (`/api/sessions/{id}`), never the raw path: labels stay bounded."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


class RequestMetrics:
    """Caches label children per (route, method, status) so each is looked up once."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._counts: dict[tuple[str, str, str], Counter] = {}
        self._durations: dict[tuple[str, str], Histogram] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, str(status))
        counter = self._counts.get(key)
        if counter is None:
            counter = self._counts[key] = self._metrics.http_requests.labels(*key)
        counter.inc()
        duration = self._durations.get(key[:2])
        if duration is None:
            duration = self._durations[key[:2]] = self._metrics.http_request_duration.labels(route, method)
        duration.observe(seconds)


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


def _exporter_error_response(exc: ExporterError) -> web.Response:
    if isinstance(exc, SessionNotFound):
        return json_response(error_body("not_found", str(exc)), 404)
    if isinstance(exc, StoreUnavailable):
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
        return json_response(error_body(exc.code, str(exc)), 503, headers)
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
    elif isinstance(exc, UpstreamUnavailable) or exc.status == "429":
        status = 503
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    body = error_body(exc.code, str(exc))
    body["error"]["upstream"] = exc.service
    return json_response(body, status, headers)


def instrumentation_middleware(metrics: Metrics) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    request_metrics = RequestMetrics(metrics)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except Exception as exc:  # every error leaves as JSON, never as a traceback
            response = exception_response(exc)
        request_metrics.observe(route_template(request), request.method, response.status, time.perf_counter() - started)
        return response

    return middleware
