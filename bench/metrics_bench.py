"""/metrics render time with 100k live sessions vs an empty store.

Both registries hold the full catalogue (exporter.core.metrics.Metrics) and a session layer; one
layer holds 100k live sessions. Gauges mirroring the store read in-process counters (O(1)), so
render time must not grow with the number of sessions. Renders alternate between the two registries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from bench.support import Result, median
from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.core.settings import parse_settings
from exporter.sessions.factory import open_session_layer

SESSIONS = 100_000


def render_ms(
    registry: CollectorRegistry, render: Callable[[CollectorRegistry], bytes] = generate_latest
) -> float:
    started = time.perf_counter()
    render(registry)
    return (time.perf_counter() - started) * 1000


async def run(sessions: int = SESSIONS, rounds: int = 41) -> list[Result]:
    settings = parse_settings({"memory_max_entries": sessions * 2})
    empty_metrics, full_metrics = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    async with (
        open_session_layer(settings, empty_metrics, EventLog(100, empty_metrics)),
        open_session_layer(settings, full_metrics, EventLog(100, full_metrics)) as full,
    ):
        for n in range(sessions):
            await full.manager.create({"n": n})
        active = full_metrics.registry.get_sample_value("session_exporter_sessions_active")
        assert active == sessions, active
        results = []
        for fmt, render in (("text", generate_latest), ("OpenMetrics", generate_openmetrics)):
            empty, loaded = [], []
            for _ in range(rounds):
                empty.append(render_ms(empty_metrics.registry, render))
                loaded.append(render_ms(full_metrics.registry, render))
            value, baseline = median(loaded), median(empty)
            series = generate_latest(full_metrics.registry).count(b"\n") - generate_latest(
                full_metrics.registry
            ).count(b"\n#")
            results.append(
                Result(
                    f"/metrics render ({fmt}) with {sessions // 1000}k sessions vs empty store",
                    value,
                    baseline,
                    "ms",
                    "≤ 1.1x",
                    value / baseline <= 1.1,
                    f"{series} sample lines",
                )
            )
    return results


if __name__ == "__main__":
    for result in asyncio.run(run()):
        print(
            f"{result.name}: {result.value:.2f} vs {result.baseline:.2f} {result.unit}"
            f" = {result.ratio:.2f}x"
        )
