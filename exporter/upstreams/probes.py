"""Availability probes for Redis (PING), the Figma API (`GET /v1/me`, judged with the outcomes of
real data calls) and the MCP server (ping).

A check raises `ProbeFailure` (down) or returns a `ProbeNote` for a reachable service that still
has a condition users notice: `rate_limited` (a 429's Retry-After is in force; `until`, the
limit type and plan tier are JSON fields) or `limited_scope` (the token may read files but not
`/v1/me`, which needs `current_user:read`). Neither is "down": `upstream_up` stays 1.

A background loop probes every `interval` seconds, all services concurrently; `run_once()` probes
now (joining a round already running). Scrapes only read what the last round left in the gauges:
`upstream_up{service}`, `upstream_enabled{service}`, `upstream_probe_duration_seconds{service}` and
`upstream_probe_failures_total{service,reason}`. A service that is not configured is `disabled`:
enabled 0, no `upstream_up` series at all, never probed, never "down". Transitions record
`upstream_down`/`upstream_up`.

    probes = Probes(metrics, events, checks={"redis": redis_check(client), "figma_api": None, ...})
    await probes.run_once()
    probes.status()["redis"].as_dict()   # {"status": "up", "latency_ms": 0.4, ...}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import redis.exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from exporter.core.catalog import SERVICE_NAMES, SERVICES, ServiceName
from exporter.core.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from exporter.core.event_log import EventLog
from exporter.core.metrics import PROBE_FAILURE_REASONS, Metrics
from exporter.core.settings import Settings
from exporter.core.tasks import cancel_and_wait, raise_if_cancelled
from exporter.upstreams.figma_client import FigmaClient
from exporter.upstreams.figma_rate_limits import DATA_TIER, ENDPOINT_TIERS
from exporter.upstreams.mcp_client import McpClient

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable["ProbeNote | None"]]
ERROR_LIMIT = 160
CONDITIONS = ("rate_limited", "limited_scope")


@dataclass(frozen=True, slots=True)
class ProbeNote:
    """A reachable service with a condition (in CONDITIONS); `details` are bounded JSON fields."""

    condition: str
    message: str
    details: Mapping[str, Any] | None = None


class ProbeFailure(Exception):
    """A failed probe: `reason` is in PROBE_FAILURE_REASONS; the message is short, secret-free."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason if reason in PROBE_FAILURE_REASONS else "error"


@dataclass(slots=True)
class ServiceStatus:
    enabled: bool
    up: bool = False
    latency_ms: float | None = None
    last_checked: float | None = None
    last_error: str | None = None
    last_change: float | None = None
    condition: str | None = None  # in CONDITIONS while up with a condition
    note: str | None = None
    details: Mapping[str, Any] | None = None

    @property
    def state(self) -> str:
        """`disabled`, `unknown` (not probed yet), `up`, `down`, or a condition while up."""
        if not self.enabled:
            return "disabled"
        if self.last_checked is None:
            return "unknown"
        if not self.up:
            return "down"
        return self.condition or "up"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.state,
            "enabled": self.enabled,
            "up": self.up,
            "latency_ms": self.latency_ms,
            "last_checked": self.last_checked,
            "last_error": self.last_error,
            "last_change": self.last_change,
            "condition": self.condition,
            "note": self.note,
            "details": dict(self.details) if self.details is not None else None,
        }


class Probes:
    """Probes the configured services; `checks[service]` is None for a disabled service."""

    def __init__(
        self,
        metrics: Metrics,
        events: EventLog | None,
        checks: Mapping[ServiceName, Check | None],
        *,
        interval: float = 30.0,
        timeouts: Mapping[ServiceName, float] | None = None,
    ) -> None:
        self.interval = interval
        self.events = events
        self._checks = {service: checks.get(service) for service in SERVICE_NAMES}
        self._timeouts = dict(timeouts or {})
        self._statuses = {
            service: ServiceStatus(enabled=check is not None)
            for service, check in self._checks.items()
        }
        enabled = [s for s, status in self._statuses.items() if status.enabled]
        self._up = {s: metrics.upstream_up.labels(s) for s in enabled}
        self._duration = {s: metrics.upstream_probe_duration.labels(s) for s in SERVICE_NAMES}
        self._failures = {
            (s, r): metrics.upstream_probe_failures.labels(s, r)
            for s in SERVICE_NAMES
            for r in PROBE_FAILURE_REASONS
        }
        for service, status in self._statuses.items():
            metrics.upstream_enabled.labels(service).set(1 if status.enabled else 0)
            if status.enabled:
                self._up[service].set(0)
            else:
                with contextlib.suppress(KeyError):  # absent unless probes were rebuilt
                    metrics.upstream_up.remove(service)
        self.rounds = 0
        self._round: asyncio.Task[None] | None = None
        self._loop: asyncio.Task[None] | None = None

    def status(self) -> dict[ServiceName, ServiceStatus]:
        return dict(self._statuses)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {service: status.as_dict() for service, status in self._statuses.items()}

    async def start(self) -> None:
        """Start the loop; the first round runs at once, in the background."""
        if self._loop is None:
            self._loop = asyncio.create_task(self._run(), name="upstream-probes")

    async def close(self) -> None:
        await cancel_and_wait(self._loop, self._round)
        self._loop = self._round = None

    async def run_once(self) -> None:
        """Probe every enabled service now; a round already running is joined, not duplicated."""
        if self._round is None or self._round.done():
            self._round = asyncio.create_task(self._probe_all(), name="upstream-probe-round")
        await asyncio.shield(self._round)

    async def probe(self, service: ServiceName) -> None:
        """Probe one enabled service now (its state changed under the last round's word)."""
        if self._checks.get(service) is not None:
            await self._probe(service)

    async def _run(self) -> None:
        while True:
            raise_if_cancelled()  # a Redis probe may have swallowed the cancel (see tasks.py)
            try:
                await self.run_once()
            except (
                Exception
            ):  # a probe bug must not end the loop; each check already catches its own
                log.exception("probe round failed")
            await asyncio.sleep(self.interval)

    async def _probe_all(self) -> None:
        services = [s for s, check in self._checks.items() if check is not None]
        await asyncio.gather(*(self._probe(service) for service in services))
        self.rounds += 1

    async def _probe(self, service: ServiceName) -> None:
        check = self._checks[service]
        assert check is not None
        timeout = self._timeouts.get(service, 10.0)
        started = time.perf_counter()
        try:
            try:
                # Not `asyncio.wait_for`: on Python 3.11 its inner task, cancelled at shutdown
                # just as the check fails, logs "Task exception was never retrieved".
                async with asyncio.timeout(timeout):
                    note = await check()
            except TimeoutError:
                raise ProbeFailure("timeout", f"no answer within {timeout:g}s") from None
        except ProbeFailure as failure:
            self._record(service, started, failure)
        except (
            Exception
        ) as exc:  # defensive: any unexpected error is a failed probe, not a dead loop
            self._record(service, started, ProbeFailure("error", type(exc).__name__))
        else:
            self._record(service, started, None, note)

    def _record(
        self,
        service: ServiceName,
        started: float,
        failure: ProbeFailure | None,
        note: ProbeNote | None = None,
    ) -> None:
        seconds = time.perf_counter() - started
        status = self._statuses[service]
        was = status.state
        status.last_checked = time.time()
        status.latency_ms = round(seconds * 1000, 3)
        status.up = failure is None
        status.last_error = None if failure is None else _short(str(failure))
        status.condition = note.condition if note is not None else None
        status.note = _short(note.message) if note is not None else None
        status.details = note.details if note is not None else None
        self._duration[service].set(seconds)
        self._up[service].set(1 if failure is None else 0)
        if failure is not None:
            self._failures[service, failure.reason].inc()
        if status.state != was:
            status.last_change = status.last_checked
            self._transition(service, was, status)

    def _transition(self, service: str, was: str, status: ServiceStatus) -> None:
        if status.up and status.condition is not None:
            log.warning("%s is %s: %s", service, status.condition, status.note)
        if status.up and was == "down":
            log.info("%s is up again", service)
            self._event("upstream_up", f"{service} is up again", service)
        elif not status.up:
            log.warning("%s is down: %s", service, status.last_error)
            self._event("upstream_down", f"{service} is down: {status.last_error}", service)

    def _event(self, type: str, message: str, service: str) -> None:
        if self.events is not None:
            self.events.record(type, message, service=service)


# -- checks, one per service; each raises ProbeFailure with a bounded reason --------------------


def redis_check(client: Redis | RedisCluster) -> Check:
    """PING on the session layer's Redis client (which it owns; the probe only borrows it)."""

    async def check() -> None:
        try:
            await client.ping()
        except redis_errors.AuthenticationError:
            raise ProbeFailure("auth", "authentication failed") from None
        except (redis_errors.TimeoutError, TimeoutError):
            raise ProbeFailure("timeout", "PING timed out") from None
        except (redis_errors.ConnectionError, OSError) as exc:
            raise ProbeFailure("connection", f"connection failed ({type(exc).__name__})") from None
        except redis_errors.RedisError as exc:
            raise ProbeFailure("error", f"PING failed ({type(exc).__name__})") from None

    return check


def figma_check(figma: FigmaClient) -> Check:
    """What users get from Figma. A lockout of the data tier (files, nodes, images) in force is
    `rate_limited` without a request; otherwise `GET /v1/me`: an answer proves the API reachable
    and the token valid. A 403 there with data calls answering is a token without scope
    `current_user:read` (enough for files): reachable, `limited_scope`. A 429 is `rate_limited`."""

    async def check() -> ProbeNote | None:
        # A lockout in force answers without a request: the data tier first (what users get),
        # then /v1/me's own tier.
        limited = _rate_limited_note(figma) or _rate_limited_note(figma, ENDPOINT_TIERS["me"])
        if limited is not None:
            return limited
        try:
            await figma.me()
        except UpstreamTimeout as exc:
            raise ProbeFailure("timeout", str(exc)) from None
        except UpstreamError as exc:
            note = _figma_note(figma, exc)
            if note is not None:
                return note
            raise ProbeFailure(_figma_reason(exc), str(exc)) from None
        except aiohttp.ClientError as exc:
            raise ProbeFailure("connection", type(exc).__name__) from None
        return None

    return check


def _rate_limited_note(figma: FigmaClient, tier: int = DATA_TIER) -> ProbeNote | None:
    limit = figma.rate_limit(tier)
    if limit is None:
        return None
    now = time.time()
    return ProbeNote("rate_limited", limit.describe(now), limit.as_dict(now))


def _figma_note(figma: FigmaClient, exc: UpstreamError) -> ProbeNote | None:
    """The condition a failed `/v1/me` shows, when it is not "down"."""
    if exc.http_status == 429:
        limited = _rate_limited_note(figma, ENDPOINT_TIERS["me"])
        if limited is not None:
            return limited
        return ProbeNote("rate_limited", _short(str(exc)), {"until": None})
    # 403 on /v1/me: scope missing, or the token is no good at all. Data calls tell which.
    invalid = "invalid token" in str(exc).lower()  # Figma's word for a token it does not know
    if exc.http_status == 403 and not invalid and figma.last_data_status not in (401, 403):
        return ProbeNote(
            "limited_scope",
            "the token lacks scope current_user:read (GET /v1/me answered 403); files, nodes and"
            " images need only file_content:read",
            {"missing_scope": "current_user:read", "last_data_status": figma.last_data_status},
        )
    return None


def mcp_check(mcp: McpClient) -> Check:
    """Initialize if needed, then ping over the held session."""

    async def check() -> None:
        try:
            await mcp.ping()
        except UpstreamTimeout as exc:
            raise ProbeFailure("timeout", str(exc)) from None
        except UpstreamError as exc:
            reason = "connection" if isinstance(exc, UpstreamUnavailable) else "protocol"
            raise ProbeFailure(reason, str(exc)) from None

    return check


def _figma_reason(exc: UpstreamError) -> str:
    if exc.http_status in (401, 403):
        return "auth"
    if exc.http_status is not None:
        return "status"
    if isinstance(exc, UpstreamUnavailable):
        return "connection"
    return "protocol"


def _short(text: str) -> str:
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 1] + "…"


# -- the probe loop of the running exporter ------------------------------------------------------


def service_checks(
    redis: Redis | RedisCluster | None, figma: FigmaClient | None, mcp: McpClient | None
) -> dict[ServiceName, Check | None]:
    """One check per configured service; None for a service that is not configured."""
    return {
        "redis": redis_check(redis) if redis is not None else None,
        "figma_api": figma_check(figma) if figma is not None else None,
        "mcp_server": mcp_check(mcp) if mcp is not None else None,
    }


@asynccontextmanager
async def open_probes(
    settings: Settings,
    metrics: Metrics,
    events: EventLog,
    checks: Mapping[ServiceName, Check | None],
) -> AsyncIterator[Probes]:
    """Probes every `--probe-interval`, each service within its catalog deadline; stops on exit."""
    timeouts = {spec.name: spec.probe_timeout(settings) for spec in SERVICES}
    probes = Probes(metrics, events, checks, interval=settings.probe_interval, timeouts=timeouts)
    await probes.start()
    try:
        yield probes
    finally:
        await probes.close()
