"""Probe bookkeeping with scripted checks: states, gauges, failure reasons, transition events.

The checks here are plain coroutines standing in for "the service answered / failed this way";
the real services are probed in tests/integration/upstreams/test_probes_upstreams.py.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from exporter.core.catalog import SERVICE_NAMES as SERVICES
from exporter.core.catalog import ServiceName
from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.upstreams.probes import ProbeFailure, Probes


class Scripted:
    """A check whose next outcome the test sets: None = answers, else raises `failure`."""

    def __init__(self) -> None:
        self.failure: Exception | None = None
        self.delay = 0.0
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure


def setup(
    checks: dict[ServiceName, Scripted | None],
    *,
    interval: float = 30.0,
    timeouts: dict[ServiceName, float] | None = None,
) -> tuple[Probes, Metrics, EventLog]:
    metrics = Metrics(CollectorRegistry())
    events = EventLog(100, metrics)
    return Probes(metrics, events, checks, interval=interval, timeouts=timeouts), metrics, events


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(f"session_exporter_{name}", labels)


async def test_disabled_services_are_disabled_not_down() -> None:
    probes, metrics, events = setup({"redis": None, "figma_api": None, "mcp_server": None})
    await probes.run_once()
    for service, status in probes.status().items():
        assert status.state == "disabled"
        assert status.as_dict()["status"] == "disabled"
        assert sample(metrics, "upstream_enabled", service=service) == 0
        assert sample(metrics, "upstream_up", service=service) is None  # no series: not "down"
    assert events.recent() == []


async def test_only_configured_services_export_upstream_up() -> None:
    _probes, metrics, _ = setup({"redis": None, "figma_api": Scripted(), "mcp_server": None})
    exported = {
        sample.labels["service"]
        for family in metrics.registry.collect()
        if family.name == "session_exporter_upstream_up"
        for sample in family.samples
    }
    assert exported == {"figma_api"}
    enabled = {s: sample(metrics, "upstream_enabled", service=s) for s in SERVICES}
    assert enabled == {"redis": 0, "figma_api": 1, "mcp_server": 0}


async def test_states_gauges_and_events_follow_the_checks() -> None:
    figma = Scripted()
    probes, metrics, events = setup({"figma_api": figma})
    assert probes.status()["figma_api"].state == "unknown"
    assert sample(metrics, "upstream_enabled", service="figma_api") == 1

    await probes.run_once()
    status = probes.status()["figma_api"]
    assert status.state == "up" and status.last_error is None and status.last_checked is not None
    assert sample(metrics, "upstream_up", service="figma_api") == 1
    assert [e.type for e in events.recent()] == []  # unknown -> up is not news

    figma.failure = ProbeFailure("auth", "Figma API me rejected the token (403)")
    await probes.run_once()
    status = probes.status()["figma_api"]
    assert status.state == "down" and "403" in (status.last_error or "")
    assert sample(metrics, "upstream_up", service="figma_api") == 0
    assert sample(metrics, "upstream_probe_failures_total", service="figma_api", reason="auth") == 1
    await probes.run_once()  # still down: counted again, no second event
    assert sample(metrics, "upstream_probe_failures_total", service="figma_api", reason="auth") == 2

    figma.failure = None
    await probes.run_once()
    assert [e.type for e in events.recent()] == ["upstream_down", "upstream_up"]
    assert events.recent()[0].details == {"service": "figma_api"}
    assert sample(metrics, "upstream_up", service="figma_api") == 1


async def test_a_slow_check_is_a_timeout_and_unknown_errors_are_contained() -> None:
    slow, broken = Scripted(), Scripted()
    slow.delay = 1.0
    broken.failure = KeyError("bug")
    probes, metrics, _ = setup({"mcp_server": slow, "redis": broken}, timeouts={"mcp_server": 0.05})
    await probes.run_once()
    assert probes.status()["mcp_server"].state == "down"
    assert (
        sample(metrics, "upstream_probe_failures_total", service="mcp_server", reason="timeout")
        == 1
    )
    duration = sample(metrics, "upstream_probe_duration_seconds", service="mcp_server")
    assert duration is not None and duration < 0.5
    assert probes.status()["redis"].last_error == "KeyError"
    assert sample(metrics, "upstream_probe_failures_total", service="redis", reason="error") == 1


async def test_concurrent_refreshes_share_one_round() -> None:
    check = Scripted()
    check.delay = 0.05
    probes, _, _ = setup({"redis": check})
    await asyncio.gather(*(probes.run_once() for _ in range(5)))
    assert check.calls == 1
    assert probes.rounds == 1


async def test_the_loop_probes_every_interval_until_closed() -> None:
    check = Scripted()
    probes, _, _ = setup({"redis": check}, interval=0.02)
    await probes.start()
    for _ in range(200):
        if check.calls >= 3:
            break
        await asyncio.sleep(0.01)
    await probes.close()
    calls = check.calls
    assert calls >= 3
    await asyncio.sleep(0.05)
    assert check.calls == calls  # stopped
