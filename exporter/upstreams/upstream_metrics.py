"""Request accounting for one upstream service: Prometheus children bound once, plus JSON counts.

>>> from prometheus_client import CollectorRegistry
>>> from exporter.metrics import Metrics
>>> recorder = UpstreamRecorder(Metrics(CollectorRegistry()), "figma_api")
>>> recorder.record("files", status_class(200), 0.05)
>>> recorder.counts["files", "2xx"]
1
"""

from __future__ import annotations

from collections import Counter

from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram

from exporter.metrics import STATUS_CLASSES, UPSTREAM_ENDPOINTS, Metrics

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

    def __init__(self, metrics: Metrics, service: str) -> None:
        self.service = service
        self.endpoints = UPSTREAM_ENDPOINTS[service]
        self._requests: dict[tuple[str, str], PromCounter] = {
            (endpoint, status): metrics.upstream_requests.labels(service, endpoint, status)
            for endpoint in self.endpoints
            for status in STATUS_CLASSES
        }
        self._durations: dict[str, Histogram] = {
            endpoint: metrics.upstream_request_duration.labels(service, endpoint)
            for endpoint in self.endpoints
        }
        self.counts: Counter[tuple[str, str]] = Counter()

    def endpoint(self, name: str) -> str:
        """`name` when it is a known endpoint, else `other_tool` (labels stay bounded)."""
        return name if name in self._durations else OTHER_TOOL

    def record(self, endpoint: str, status: str, seconds: float) -> None:
        self._requests[endpoint, status].inc()
        self._durations[endpoint].observe(seconds)
        self.counts[endpoint, status] += 1

    def summary(self) -> dict[str, object]:
        """Totals for the JSON API: requests, failures, and counts by endpoint and status."""
        total = sum(self.counts.values())
        failed = sum(n for (_, status), n in self.counts.items() if status != "2xx")
        by_endpoint: dict[str, dict[str, int]] = {}
        for (endpoint, status), n in sorted(self.counts.items()):
            by_endpoint.setdefault(endpoint, {})[status] = n
        return {"requests": total, "failures": failed, "by_endpoint": by_endpoint}
