"""Health through a real Redis outage: issue, penalty, events on the stream, recovery."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.support.redis_server import RedisServer
from tests.support.session_metrics import (
    App,
    SseMessage,
    SseReader,
    running_app,
    wait_for,
)

HEALTH_INTERVAL = 1.0
# Probes on their own would run only every 30 s: the health loop must notice by itself.
SETTINGS = {"health_interval": HEALTH_INTERVAL, "probe_interval": 30.0, "snapshot_interval": 0.25}


async def health(app: App) -> dict[str, Any]:
    body: dict[str, Any] = await app.json("/api/session-metrics/health-check")
    return body


def overall_change(status: str) -> Callable[[SseMessage], bool]:
    def matches(message: SseMessage) -> bool:
        data = message.data
        return (
            message.event == "event"
            and data["type"] == "health_changed"
            and data["details"]["component"] == "overall"
            and data["details"]["status"] == status
        )

    return matches


async def test_killed_redis_is_an_issue_within_one_health_interval_and_recovery_is_seen(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with running_app(redis_url=redis_url, **SETTINGS) as app:
        await wait_for(lambda: app.runtime.service.availability()["redis"] == "up", 5)
        baseline = await app.json("/api/session-metrics/health-check?refresh=true")
        assert (baseline["score"], baseline["status"]) == (100, "healthy")
        response = await app.client.get("/api/session-metrics/stream")
        stream = SseReader(response)
        try:
            redis_server.kill()
            killed = time.monotonic()
            await wait_for(lambda: _has_issue(app, "redis_down"), HEALTH_INTERVAL + 2.0)
            noticed = time.monotonic() - killed
            down = await health(app)
            change = await stream.until(overall_change("degraded"), timeout=5)
            assert app.sample("health_score", {"component": "overall"}) == 70
            assert app.sample("health_issues", {"component": "session", "code": "redis_down"}) == 1
            assert app.sample("health_status", {"component": "overall", "status": "degraded"}) == 1
        finally:
            redis_server.start()
        await wait_for(
            lambda: app.runtime.service.report.overall.status == "healthy", HEALTH_INTERVAL + 5.0
        )
        back = await stream.until(overall_change("healthy"), timeout=5)
        healthy = await health(app)
        assert app.sample("health_issues", {"component": "session", "code": "redis_down"}) == 0
        response.close()

    assert noticed < HEALTH_INTERVAL + 1.0  # one interval, plus a margin for a busy machine
    assert (down["score"], down["status"]) == (70, "degraded")  # 100 minus the table's 30
    (issue,) = down["issues"]
    assert (issue["code"], issue["penalty"], issue["severity"], issue["component"]) == (
        "redis_down",
        30,
        "critical",
        "session",
    )
    assert down["services"]["redis"]["state"] == "down"
    assert down["components"]["session"]["status"] == "degraded"
    assert change.data["details"]["previous"] == "healthy" and change.data["details"]["score"] == 70
    assert back.data["details"]["previous"] == "degraded"
    assert (healthy["score"], healthy["status"], healthy["issues"]) == (100, "healthy", [])


async def test_failover_under_traffic_is_judged_at_once(
    redis_server: RedisServer, redis_url: str
) -> None:
    """A failed write trips the store's fallback; the failover event triggers a check right away."""
    # The latency row far from the calls: of the few made here the failover PUT is the slowest,
    # so their nearest-rank p95, and on a starved machine it may pass the default threshold and
    # keep the report degraded after failback (the next check is 30 s away).
    settings = {"health_interval": 30.0, "probe_interval": 30.0, "slow_threshold_ms": 5000}
    async with running_app(redis_url=redis_url, **settings) as app:
        session = await app.json("/api/sessions", 201, "POST", json={"data": {}})
        try:
            redis_server.kill()
            started = time.monotonic()
            await app.json(f"/api/sessions/{session['id']}", 200, "PUT", json={"data": {"a": 1}})
            await wait_for(lambda: _has_issue(app, "redis_down"), 5)
            judged_in = time.monotonic() - started
            persistence = await app.json("/api/session-metrics/persistence")
        finally:
            redis_server.start()
        await wait_for(lambda: not app.runtime.service.store_status()["fallback_active"], 10)
        try:
            await wait_for(lambda: app.runtime.service.report.overall.status == "healthy", 5)
        except AssertionError:  # say which issue stayed
            raise AssertionError(repr(app.runtime.service.report.overall.issues)) from None
    assert judged_in < 3  # long before the 30 s interval
    assert persistence["redis"]["fallback_active"] is True
    assert persistence["replay"]["pending"] == 1
    assert persistence["managers"]["session"]["issues"][0]["code"] == "redis_down"


async def test_a_probe_failed_during_the_outage_does_not_outlive_the_failback(
    redis_server: RedisServer, redis_url: str
) -> None:
    """Redis's probe ran while Redis was down; once the store fails back the report is healthy
    at once, not a probe interval (here 30 s) later. Seen under load: the probes were due when
    the failover triggered a check."""
    settings = {"health_interval": 30.0, "probe_interval": 30.0, "slow_threshold_ms": 5000}
    async with running_app(redis_url=redis_url, **settings) as app:
        service = app.runtime.service
        session = await app.json("/api/sessions", 201, "POST", json={"data": {}})
        try:
            redis_server.kill()
            await app.json(f"/api/sessions/{session['id']}", 200, "PUT", json={"data": {"a": 1}})
            await service.check_health()  # fresh probes, during the outage
            assert service.probes.status()["redis"].state == "down"
        finally:
            redis_server.start()
        await wait_for(lambda: not service.store_status()["fallback_active"], 10)
        await wait_for(lambda: service.report.overall.status == "healthy", 5)
        assert service.probes.status()["redis"].state == "up"


def _has_issue(app: App, code: str) -> bool:
    return any(issue.code == code for issue in app.runtime.service.report.overall.issues)
