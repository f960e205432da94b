"""The HTTP request metrics' label children, looked up once per (route, method) and status.

Synchronous, so that `make speedups` can compile it (`exporter.app.speedups`);
`exporter.web.handling` calls it from each route's wrapper, and `declare` for each route at
start-up.
"""

from __future__ import annotations

from aiohttp.web import AbstractResource

from exporter.core.fast_metrics import CounterChild
from exporter.core.metrics import Metrics

UNMATCHED = "unmatched"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
# The data plane: the routes users' requests go to, whose errors and latency the service-level
# objectives count (mixin/config.yml `slo.objectives`, docs/slo.md).
DATA_PLANE = ("/api/sessions", "/api/figma/")
# The server errors the API answers (500 internal, 502/504 upstream, 503 unavailable or
# store_busy, 507 store_full): counted against availability.
SERVER_ERRORS = (500, 502, 503, 504, 507)


def declare(metrics: Metrics, route: str, method: str) -> None:
    """Create a data-plane route's duration and server-error series at 0 (bounded: 5 statuses
    per route and method).

    A series that first appears with a value loses it to rate(), which counts from the first
    sample: without this, the first scrape interval of an outage's 503s would be missing from the
    availability SLI, and a restarted replica's first requests from the latency SLI.
    """
    if not route.startswith(DATA_PLANE):
        return
    metrics.http_request_duration.labels(route, method)
    for status in SERVER_ERRORS:
        metrics.http_requests.labels(route, method, str(status))


def _template(resource: AbstractResource | None) -> str:
    """The route's template (`/api/sessions/{id}`), never the raw path: labels stay bounded."""
    return resource.canonical if resource is not None else UNMATCHED


class RouteChildren:
    """The children of one (route template, method): its duration and a counter per status."""

    __slots__ = ("_counter", "_method", "_route", "observe", "statuses")

    def __init__(self, metrics: Metrics, route: str, method: str) -> None:
        self._counter = metrics.http_requests
        self._route = route
        self._method = method
        self.observe = metrics.http_request_duration.labels(route, method).observe
        self.statuses: dict[int, CounterChild] = {}

    def count(self, status: int) -> None:
        counter = self.statuses.get(status)
        if counter is None:
            counter = self.statuses[status] = self._counter.labels(
                self._route, self._method, str(status)
            )
        counter.value += 1  # CounterChild.inc() without its negative-amount check


class RequestMetrics:
    """The label children per resource and method, each looked up once.

    Keyed by the matched resource object, not by its template string: resources live as long as
    the app (unmatched requests all map to None), so the cache stays bounded like the labels.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._routes: dict[AbstractResource | None, dict[str, RouteChildren]] = {}

    def children(self, resource: AbstractResource | None, method: str) -> RouteChildren:
        # The method is the client's raw token: anything unusual shares one series.
        label = method if method in HTTP_METHODS else "other"
        methods = self._routes.setdefault(resource, {})
        route = methods.get(label)
        if route is None:
            route = methods[label] = RouteChildren(self._metrics, _template(resource), label)
        return route
