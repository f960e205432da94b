"""Status classes and the per-service request recorder (Prometheus and JSON stay in step)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from exporter.core.metrics import Metrics
from exporter.upstreams.upstream_metrics import UpstreamRecorder, status_class


@pytest.mark.parametrize(
    "code, label",
    [
        (200, "2xx"),
        (204, "2xx"),
        (404, "4xx"),
        (403, "4xx"),
        (429, "429"),
        (500, "5xx"),
        (503, "5xx"),
        (302, "error"),
    ],
)
def test_status_class(code: int, label: str) -> None:
    assert status_class(code) == label


def test_recorder_counts_in_prometheus_and_json() -> None:
    registry = CollectorRegistry()
    recorder = UpstreamRecorder(Metrics(registry), "figma_api")
    recorder.record("files", "2xx", 0.05)
    recorder.record("files", "429", 0.01)
    recorder.record("images", "timeout", 1.0)

    def requests(endpoint: str, status: str) -> float | None:
        labels = {"service": "figma_api", "endpoint": endpoint, "status": status}
        return registry.get_sample_value("session_exporter_upstream_requests_total", labels)

    assert requests("files", "2xx") == 1
    assert requests("files", "429") == 1
    assert requests("images", "timeout") == 1
    assert requests("nodes", "2xx") == 0  # known series exist at 0
    duration = registry.get_sample_value(
        "session_exporter_upstream_request_duration_seconds_sum",
        {"service": "figma_api", "endpoint": "files"},
    )
    assert duration == pytest.approx(0.06)
    summary = recorder.summary()
    assert summary["requests"] == 3 and summary["failures"] == 2
    assert summary["by_endpoint"] == {"files": {"2xx": 1, "429": 1}, "images": {"timeout": 1}}


def test_unknown_mcp_tools_share_one_label() -> None:
    recorder = UpstreamRecorder(Metrics(CollectorRegistry()), "mcp_server")
    assert recorder.endpoint("get_screenshot") == "get_screenshot"
    assert recorder.endpoint("get_variable_defs") == "get_variable_defs"
    assert recorder.endpoint("get_code_connect_map") == "other_tool"
    assert recorder.endpoint("../../etc") == "other_tool"
