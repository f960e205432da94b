"""Request accounting for one upstream service: children bound once, whose plain numbers are both
the `/metrics` series and the JSON summary's counts.

>>> from prometheus_client import CollectorRegistry
>>> from exporter.core.metrics import Metrics
>>> recorder = UpstreamRecorder(Metrics(CollectorRegistry()), "figma_api")
>>> recorder.record("files", status_class(200), 0.05)
>>> recorder.summary()["by_endpoint"]["files"]
{'2xx': 1}
"""

from __future__ import annotations

from prometheus_client import Histogram

from exporter.core.catalog import ServiceName
from exporter.core.fast_metrics import CounterChild
from exporter.core.metrics import STATUS_CLASSES, UPSTREAM_ENDPOINTS, Metrics

OTHER_TOOL = "other_tool"


def status_class(http_status: int) -> str:
    """The bounded `status` label for an HTTP status: 2xx, 4xx, 429, 5xx, else error."""
    if http_status == 429:
        return "429"
    if 200 <= http_status < 300:
        return "2xx"
    if 400 <= http_status < 500:
        return "4xx"
    if 500 <= http_status < 600:
        return "5xx"
    return "error"


class UpstreamRecorder:
    """Counts requests by (endpoint, status class) and observes their duration."""

    def __init__(self, metrics: Metrics, service: ServiceName) -> None:
        self.service = service
        self.endpoints = UPSTREAM_ENDPOINTS[service]
        self._requests: dict[tuple[str, str], CounterChild] = {
            (endpoint, status): metrics.upstream_requests.labels(service, endpoint, status)
            for endpoint in self.endpoints
            for status in STATUS_CLASSES
        }
        self._durations: dict[str, Histogram] = {
            endpoint: metrics.upstream_request_duration.labels(service, endpoint)
            for endpoint in self.endpoints
        }

    def endpoint(self, name: str) -> str:
        """`name` when it is a known endpoint, else `other_tool` (labels stay bounded)."""
        return name if name in self._durations else OTHER_TOOL

    def record(self, endpoint: str, status: str, seconds: float) -> None:
        self._requests[endpoint, status].inc()
        self._durations[endpoint].observe(seconds)

    @property
    def counts(self) -> dict[tuple[str, str], int]:
        """Requests by (endpoint, status class), read from the series /metrics renders."""
        return {key: int(child.value) for key, child in self._requests.items()}

    def summary(self) -> dict[str, object]:
        """Totals for the JSON API: requests, failures, and counts by endpoint and status."""
        counts = {key: n for key, n in self.counts.items() if n}
        by_endpoint: dict[str, dict[str, int]] = {}
        for (endpoint, status), n in sorted(counts.items()):
            by_endpoint.setdefault(endpoint, {})[status] = n
        failed = sum(n for (_, status), n in counts.items() if status != "2xx")
        return {"requests": sum(counts.values()), "failures": failed, "by_endpoint": by_endpoint}
