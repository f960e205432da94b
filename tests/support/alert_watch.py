"""What a real Prometheus's alerts were, moment by moment: a thread polls `/api/v1/alerts` (five
times per second) and keeps every answer, so a test can wait for an alert and later ask what was
pending or firing during any stretch of time.

    watch = AlertWatch(prometheus).start()
    t0 = time.time()
    ...                                            # inject an incident
    await watch.until(lambda now: any(a.name == "X" and a.firing for a in now), budget=8)
    watch.seen(t0, time.time())                    # every alert seen in between
    watch.stop()
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.support.prometheus_server import PrometheusError, PrometheusServer

POLL = 0.2  # seconds between two looks; Prometheus evaluates every second in the drills


@dataclass(frozen=True, slots=True)
class Alert:
    name: str
    state: str  # pending or firing
    labels: tuple[tuple[str, str], ...]

    @property
    def firing(self) -> bool:
        return self.state == "firing"

    @property
    def severity(self) -> str:
        return dict(self.labels).get("severity", "")

    @property
    def page(self) -> bool:
        return self.firing and self.severity == "critical"

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, "")

    def __str__(self) -> str:
        shown = {k: v for k, v in self.labels if k in ("instance", "long", "limit", "severity")}
        return f"{self.name}{shown} {self.state}"


Snapshot = tuple[float, frozenset[Alert]]


class AlertWatch:
    def __init__(self, prometheus: PrometheusServer) -> None:
        self.prometheus = prometheus
        self.snapshots: list[Snapshot] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-watch", daemon=True)

    def start(self) -> AlertWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            try:
                answer = self.prometheus.api("alerts")["alerts"]
            except (OSError, PrometheusError):
                self.errors += 1  # a busy Prometheus: the next look will tell
                continue
            alerts = frozenset(
                Alert(
                    a["labels"]["alertname"],
                    a["state"],
                    tuple(sorted((k, v) for k, v in a["labels"].items() if k != "alertname")),
                )
                for a in answer
            )
            self.snapshots.append((time.time(), alerts))

    def now(self) -> frozenset[Alert]:
        return self.snapshots[-1][1] if self.snapshots else frozenset()

    def seen(self, start: float, end: float) -> set[Alert]:
        """Every alert pending or firing at some look between `start` and `end` (wall clock)."""
        return {alert for at, alerts in self.snapshots if start <= at <= end for alert in alerts}

    def first(self, predicate: Callable[[Alert], bool], since: float) -> float | None:
        """The wall-clock time of the first look after `since` with an alert matching."""
        for at, alerts in self.snapshots:
            if at >= since and any(predicate(alert) for alert in alerts):
                return at
        return None

    async def until(
        self, condition: Callable[[frozenset[Alert]], bool], budget: float, what: str
    ) -> float:
        """Wait (without blocking the event loop) until a look satisfies `condition`; the
        wall-clock time of that look. AssertionError naming `what` after `budget` seconds."""
        start = time.time()
        checked = len(self.snapshots)
        while True:
            for at, alerts in self.snapshots[checked:]:
                if condition(alerts):
                    return at
            checked = len(self.snapshots)
            if time.time() - start > budget:
                shown = ", ".join(sorted(map(str, self.now()))) or "none"
                raise AssertionError(f"{what}: not within {budget:.1f}s; alerts now: {shown}")
            await asyncio.sleep(POLL / 2)
