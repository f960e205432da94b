"""The fleet view's payloads and its pure arithmetic: replicas' published summaries in, one
`Fleet` document out (every replica, newest first, and the fleet's totals). No I/O here: the
publisher (`exporter.monitoring.fleet`) reads the summaries from Redis and passes the clock's
reading in.

    >>> a = summary("a", 100.0, ops=10.0, lookups=10.0, hit_rate=1.0)
    >>> b = summary("b", 99.0, ops=30.0, lookups=30.0, hit_rate=0.5)
    >>> view = fleet_view([a, b], me="a", now=101.0)
    >>> view.totals.operations_per_second, view.totals.cache_hit_rate
    (40.0, 0.625)
    >>> [(r.replica, r.age_seconds, r.this_replica) for r in view.replicas]
    [('a', 1.0, True), ('b', 2.0, False)]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

from msgspec import Meta, Struct

from exporter.monitoring.payloads import Realtime

# The fleet's status is its worst replica's ("disabled" counts as nothing).
_SEVERITY = {"healthy": 0, "degraded": 1, "poor": 2, "critical": 3}
FleetStatus = Literal["ok", "degraded", "disabled"]


class ReplicaHealth(Struct):
    score: float
    status: str


class ReplicaSummary(Struct):
    """What one replica publishes every snapshot (bounded: a few hundred bytes)."""

    replica: Annotated[str, Meta(max_length=200)]
    published_at: float
    health: ReplicaHealth
    operations_per_second: float
    errors_per_second: float
    cache_lookups_per_second: float
    cache_hit_rate: float | None
    figma_operations_per_second: float
    p95_ms: Annotated[float | None, Meta(description="session operations, rolling window")]
    memory_entries: int
    redis_connected: bool
    fallback_active: bool
    replay_pending: int
    sse_clients: int


class FleetReplica(ReplicaSummary, kw_only=True):
    age_seconds: Annotated[float, Meta(description="since the replica last published")]
    this_replica: Annotated[bool, Meta(description="the replica that answered")]


class FleetTotals(Struct):
    replicas: int
    operations_per_second: float
    errors_per_second: float
    cache_hit_rate: Annotated[float | None, Meta(description="weighted by each one's lookups")]
    figma_operations_per_second: float
    memory_entries: int
    replay_pending: int
    sse_clients: int
    redis_connected: Annotated[int, Meta(description="replicas connected to Redis")]
    lowest_score: float | None
    worst_status: str | None


class Fleet(Struct):
    """`?scope=fleet`: every replica that published within the TTL, and the totals."""

    scope: Literal["fleet"]
    status: Annotated[
        FleetStatus,
        Meta(
            description="ok; degraded: Redis unreachable, the view is the last one read;"
            " disabled: no Redis, so no fleet"
        ),
    ]
    message: str | None
    read_at: Annotated[float | None, Meta(description="when the view was last read from Redis")]
    replicas: list[FleetReplica]
    totals: FleetTotals
    truncated: Annotated[bool, Meta(description="more replicas published than are listed")]


def summary(replica: str, published_at: float, **values: float) -> ReplicaSummary:
    """A summary with defaults (for examples and tests): `ops`, `lookups`, `hit_rate`."""
    return ReplicaSummary(
        replica=replica,
        published_at=published_at,
        health=ReplicaHealth(100.0, "healthy"),
        operations_per_second=values.get("ops", 0.0),
        errors_per_second=0.0,
        cache_lookups_per_second=values.get("lookups", 0.0),
        cache_hit_rate=values.get("hit_rate"),
        figma_operations_per_second=0.0,
        p95_ms=None,
        memory_entries=0,
        redis_connected=True,
        fallback_active=False,
        replay_pending=0,
        sse_clients=0,
    )


def totals(replicas: list[ReplicaSummary]) -> FleetTotals:
    lookups = sum(r.cache_lookups_per_second for r in replicas if r.cache_hit_rate is not None)
    hits = sum(
        r.cache_lookups_per_second * r.cache_hit_rate
        for r in replicas
        if r.cache_hit_rate is not None
    )
    worst = max(replicas, key=lambda r: _SEVERITY.get(r.health.status, -1), default=None)
    return FleetTotals(
        replicas=len(replicas),
        operations_per_second=round(sum(r.operations_per_second for r in replicas), 3),
        errors_per_second=round(sum(r.errors_per_second for r in replicas), 3),
        cache_hit_rate=round(hits / lookups, 4) if lookups else None,
        figma_operations_per_second=round(sum(r.figma_operations_per_second for r in replicas), 3),
        memory_entries=sum(r.memory_entries for r in replicas),
        replay_pending=sum(r.replay_pending for r in replicas),
        sse_clients=sum(r.sse_clients for r in replicas),
        redis_connected=sum(1 for r in replicas if r.redis_connected),
        lowest_score=min((r.health.score for r in replicas), default=None),
        worst_status=worst.health.status if worst is not None else None,
    )


def fleet_view(
    summaries: Iterable[ReplicaSummary],
    *,
    me: str,
    now: float,
    status: FleetStatus = "ok",
    message: str | None = None,
    read_at: float | None = None,
    limit: int = 64,
) -> Fleet:
    """Newest first, one entry per replica, at most `limit` listed (totals over those listed)."""
    newest: dict[str, ReplicaSummary] = {}
    for item in summaries:
        if item.replica not in newest or item.published_at > newest[item.replica].published_at:
            newest[item.replica] = item
    ordered = sorted(newest.values(), key=lambda r: (r.replica != me, -r.published_at))
    listed = ordered[:limit]
    replicas = [
        FleetReplica(
            **{field: getattr(r, field) for field in ReplicaSummary.__struct_fields__},
            age_seconds=round(max(0.0, now - r.published_at), 3),
            this_replica=r.replica == me,
        )
        for r in listed
    ]
    return Fleet(
        scope="fleet",
        status=status,
        message=message,
        read_at=read_at if read_at is not None else (now if status == "ok" else None),
        replicas=replicas,
        totals=totals(listed),
        truncated=len(ordered) > limit,
    )


def replica_summary(
    replica: str, realtime: Realtime, p95_ms: float | None, now: float
) -> ReplicaSummary:
    """This replica's summary from its latest snapshot (and its session window's p95)."""
    session, figma = realtime.managers.session, realtime.managers.figma
    return ReplicaSummary(
        replica=replica,
        published_at=now,
        health=ReplicaHealth(realtime.health.score, realtime.health.status),
        operations_per_second=session.operations_per_second,
        errors_per_second=session.errors_per_second,
        cache_lookups_per_second=session.cache_lookups_per_second,
        cache_hit_rate=session.cache_hit_rate,
        figma_operations_per_second=figma.operations_per_second,
        p95_ms=p95_ms,
        memory_entries=realtime.store.memory_entries,
        redis_connected=realtime.store.redis_connected,
        fallback_active=realtime.store.fallback_active,
        replay_pending=realtime.store.replay_pending,
        sse_clients=realtime.sse_clients,
    )
