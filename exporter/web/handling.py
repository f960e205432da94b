"""How every request is handled around its route's handler, in one frame: timing and the HTTP
metrics, the `Host` check (DNS rebinding, `exporter.web.allowed_hosts`), the login check (with a
web config), the cross-site refusal of state-changing requests, and the rendering of every error
as JSON.

Why not aiohttp middlewares: each layer is a partial and a coroutine, and once any middleware
exists aiohttp adds its own `_fix_request_current_app` layer too. Measured in-process on the
session GET (`Application._handle`, 2 vCPUs, uvloop): 16-21 µs with the three middlewares, 14-17 µs
with this one wrapper. So `instrumented_routes` wraps each route's handler once, at start-up, and a
catch-all route registered last answers what no route matches (404, or 405 when only the method is
wrong), exactly as aiohttp's router would, through the same wrapper.

Each route's wrapper caches its metric children by method (its resource, an app-lifetime object, is
fixed), so per request it reads the method and the status and does two plain dict lookups: no
label strings, `str()` or tuples are built once a (route, method, status) has been seen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError

from exporter.core.errors import ExporterError, StoreUnavailable, UpstreamError, error_kind
from exporter.core.metrics import Metrics
from exporter.web.allowed_hosts import AllowedHosts
from exporter.web.api_error import ApiError, RequestBodyTimeout, error_body, json_response
from exporter.web.cross_site import STATE_CHANGING, is_cross_site
from exporter.web.operation import AnswerNow, Route
from exporter.web.request_metrics import HTTP_METHODS, RequestMetrics, RouteChildren, declare
from exporter.web.throttled_log import ThrottledLog
from exporter.web.web_auth import WebConfigState, unauthorised

log = logging.getLogger(__name__)
HOST_REFUSED = ThrottledLog(logging.getLogger("exporter.http"))

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The catch-all route (not part of the API: it answers 404/405 as the router would).
UNMATCHED_PATH = "/{unmatched_path:.*}"
_perf_counter = time.perf_counter


def exception_response(exc: BaseException) -> web.Response:
    """Render any exception as a JSON error; unknown ones become a 500 without details."""
    if isinstance(exc, ApiError):
        return json_response(error_body(exc.code, exc.message), exc.status, exc.headers)
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


def body_timeout_response() -> web.Response:
    """The body did not arrive in time (`exporter.web.client_limits`): 408, then close."""
    message = "request body not received in time"
    response = json_response(error_body("request_timeout", message), 408)
    response.force_close()
    return response


def host_refusal(request: web.Request) -> web.Response:
    """403 for a `Host` this exporter does not answer to; never echoes it back."""
    host = request.headers.get("Host", "")
    shown = "".join(c if c.isascii() and c.isprintable() else "?" for c in host[:100])
    HOST_REFUSED.log(
        "refused a request for Host %r from %s: not an IP address, localhost, the --listen"
        " host or a --web-allowed-host name (DNS rebinding, or a name to add)",
        shown,
        request.remote,
    )
    message = "this Host is not one the exporter answers to; see --web-allowed-host"
    return json_response(error_body("host_not_allowed", message), 403)


def _exporter_error_response(exc: ExporterError) -> web.Response:
    """Status and code from `exporter.core.errors.ERROR_KINDS`; Retry-After if the error has one."""
    kind = error_kind(exc)
    if kind.status == 500:
        log.error("unexpected %s: %s", type(exc).__name__, exc)
    body = error_body(kind.code or exc.code, str(exc))
    headers: dict[str, str] = {}
    retry_after = exc.retry_after if isinstance(exc, StoreUnavailable | UpstreamError) else None
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    if isinstance(exc, UpstreamError):
        body["error"]["upstream"] = exc.service
    return json_response(body, kind.status, headers)


class Guards:
    """What runs before a handler: the `Host` check, the login check (with a web config) and the
    cross-site check."""

    def __init__(self, auth: WebConfigState | None, hosts: AllowedHosts | None = None) -> None:
        self.auth = auth
        self.hosts = hosts

    async def refusal(self, request: web.Request) -> web.Response | None:
        """The answer that stops `request` before its handler, or None to go on."""
        if self.auth is not None:
            denied = await unauthorised(self.auth, request)
            if denied is not None:
                return denied
        if request.method in STATE_CHANGING and is_cross_site(
            request.method, request.headers, request.host
        ):
            raise ApiError(
                403, "cross_site_request", "state-changing requests from other origins are refused"
            )
        return None


def instrumented(
    handler: Handler,
    metrics: RequestMetrics,
    guards: Guards,
    *,
    unmatched: bool,
    answer_now: AnswerNow | None = None,
    any_host: bool = False,
) -> Handler:
    """`handler` timed, counted under its route (or `unmatched`), guarded, errors as JSON.

    With `answer_now`, a synchronous first try: its response is used when it gives one (no
    handler coroutine is created), else `handler` runs. `any_host` routes skip the `Host` check."""
    refusal = guards.refusal
    check = guards.auth is not None
    hosts = None if any_host or guards.hosts is None or guards.hosts.any else guards.hosts
    # One wrapper per route: its resource is fixed, so its children are cached here by method
    # (GET and HEAD share a handler); unusual methods are not cached, to stay bounded.
    by_method: dict[str, RouteChildren] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        started = _perf_counter()
        response: web.StreamResponse | None = None
        try:
            if hosts is not None and not hosts.allows(request.headers.get("Host")):
                response = host_refusal(request)
            elif check or request.method in STATE_CHANGING:
                response = await refusal(request)
            if response is None and answer_now is not None:
                response = answer_now(request)
            if response is None:
                response = await handler(request)
        except web.RequestPayloadError as exc:
            response = payload_error_response(request, exc)
        except RequestBodyTimeout:
            response = body_timeout_response()
        except Exception as exc:  # every error leaves as JSON, never as a traceback
            response = exception_response(exc)
        seconds = _perf_counter() - started
        method = request.method
        route = by_method.get(method)
        if route is None:
            route = metrics.children(
                None if unmatched else request.match_info.route.resource, method
            )
            if method in HTTP_METHODS:
                by_method[method] = route
        route.observe(seconds)
        route.count(response.status)
        return response

    return handle


def instrumented_routes(
    routes: Sequence[Route],
    metrics: Metrics,
    auth: WebConfigState | None,
    hosts: AllowedHosts | None = None,
) -> list[web.RouteDef]:
    """`routes` as served, each handler wrapped by `instrumented` (with the route's synchronous
    first try, if it has one), then the catch-all for the rest. `hosts` is checked on every route
    but those declared `any_host`."""
    request_metrics, guards = RequestMetrics(metrics), Guards(auth, hosts)
    for route in routes:
        declare(metrics, route.path, route.method)
    wrapped = [
        route.definition(
            instrumented(
                route.served_handler(),
                request_metrics,
                guards,
                unmatched=False,
                answer_now=route.answer_now,
                any_host=route.any_host,
            )
        )
        for route in routes
    ]
    fallback = instrumented(_no_route, request_metrics, guards, unmatched=True)
    return [*wrapped, web.route("*", UNMATCHED_PATH, fallback)]


async def _no_route(request: web.Request) -> web.StreamResponse:
    """What aiohttp's router answers when no route matches: 405 if a route matches the path with
    another method, else 404 (the catch-all itself matched, so ask the other resources)."""
    own = request.match_info.route.resource
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not own:
            _, methods = await resource.resolve(request)
            allowed |= methods
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()
