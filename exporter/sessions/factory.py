"""Builds the session layer: the Redis client (created in `redis_client`, only from here), the
tiered store, the instrumented SessionManager, and with Redis the cross-replica parts (the session
index for global counts, invalidation tracking for coherent memory tiers); starts their background
tasks and closes everything.

    async with open_session_layer(settings, metrics, events) as layer:
        session = await layer.manager.create({"user": "ada"})
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from exporter.core.errors import ConfigError, JournalLocked
from exporter.core.event_log import EventLog
from exporter.core.instrumentation import Instrumentation
from exporter.core.metrics import Metrics
from exporter.core.settings import Settings
from exporter.sessions.manager import SessionManager
from exporter.sessions.session import NAMESPACE
from exporter.store import journal_files
from exporter.store.breaker import CircuitBreaker
from exporter.store.cluster_watch import ClusterWatch
from exporter.store.coherence import Coherence
from exporter.store.contract import ENTRY_OVERHEAD
from exporter.store.durable_journal import DurableJournal
from exporter.store.journal_reporting import report_journal
from exporter.store.memory_store import MemoryStore
from exporter.store.redis_client import (
    CLUSTER,
    SENTINEL,
    RedisClient,
    RedisDeployment,
    create_redis_client,
)
from exporter.store.redis_store import RedisStore
from exporter.store.sentinel_watch import SentinelWatch, Switched
from exporter.store.session_index import SessionIndex
from exporter.store.tiered_store import TieredStore, new_replica_id

log = logging.getLogger(__name__)

# Index shards on a Cluster: enough to spread the index writes over the primaries.
CLUSTER_INDEX_SHARDS = 16


@dataclass(slots=True)
class SessionLayer:
    store: TieredStore
    manager: SessionManager
    redis: RedisClient | None
    instrumentation: Instrumentation
    deployment: RedisDeployment | None = None
    coherence: Coherence | None = None
    index: SessionIndex | None = None
    master_watch: SentinelWatch | ClusterWatch | None = None  # hears the master move

    @property
    def session_check(self) -> Callable[[str], Awaitable[object]]:
        """Whether a session exists (raises SessionNotFound): the Figma routes' `?session_id=`."""
        return self.manager.get


def build_store(
    settings: Settings,
    metrics: Metrics,
    events: EventLog | None,
    client: RedisClient | None,
    *,
    journal_dir: Path | None = None,
    index: SessionIndex | None = None,
    coherent: bool = False,
    resend_after_switch: bool = False,
) -> TieredStore:
    """The tiered store. Without Redis, sessions are pinned in memory (never evicted: a full
    tier refuses with 507). With Redis, outage writes go to the durable journal in `journal_dir`
    (default `--journal-dir`), else to one in this process only. `coherent`: a Coherence will
    track the session keys, so the store's own writes of them echo back as invalidations.
    `resend_after_switch`: Sentinel or Cluster, whose master switches may lose the last writes:
    they are kept to be sent again."""
    memory = MemoryStore(
        settings.memory_max_entries,
        settings.memory_max_bytes,
        counted_prefixes=(NAMESPACE,),
        entry_overhead=ENTRY_OVERHEAD,
        pinned_prefixes=() if client is not None else (NAMESPACE,),
    )
    redis_tier = (
        RedisStore(
            client, prefix=settings.redis_key_prefix, timeout=settings.redis_timeout, index=index
        )
        if client is not None
        else None
    )
    directory = journal_dir or settings.journal_dir
    if client is not None and not directory:
        log.warning(
            "no --journal-dir: writes accepted during a Redis outage are kept in this process only"
            " and lost if it dies before Redis is back"
        )
    journal = (
        open_journal(Path(directory), settings, metrics, events) if directory and client else None
    )
    return TieredStore(
        memory,
        redis_tier,
        breaker=CircuitBreaker(settings.redis_retry_interval),
        replay_max_entries=settings.replay_max_entries,
        journal=journal,
        # A replica restarted on its journal takes over its record in the fleet: the others
        # wait for it to replay, not for a stranger's record to be forgotten.
        replica_id=journal_files.identity(journal.directory, new_replica_id())
        if journal is not None
        else None,
        fleet_members=journal_files.FleetMembersFile(journal.directory)
        if journal is not None
        else None,
        close_timeout=settings.shutdown_timeout,
        metrics=metrics,
        events=events,
        tracked_prefixes=(NAMESPACE,) if coherent else (),
        resend_after_switch=resend_after_switch,
    )


def open_journal(
    directory: Path, settings: Settings, metrics: Metrics, events: EventLog | None
) -> DurableJournal:
    """The durable outage journal in `directory` (locked: one process per directory), reported
    in `metrics` and `events`. Opens on a full or read-only disk (refusing writes until it can
    take them); a journal that cannot be read stops the start-up."""
    try:
        journal = DurableJournal.open(
            directory,
            max_entries=settings.replay_max_entries,
            retry_after=max(1.0, settings.redis_retry_interval * 2),
        )
    except JournalLocked as exc:
        raise ConfigError("--journal-dir", str(exc)) from None
    except OSError as exc:
        raise ConfigError("--journal-dir", f"cannot open the outage journal: {exc}") from None
    report_journal(journal, metrics, events)
    return journal


def build_index(settings: Settings, deployment: RedisDeployment) -> SessionIndex:
    """The cross-replica session index; on a Cluster split in shards spread over the primaries."""
    return SessionIndex(
        deployment.client,
        prefix=settings.redis_key_prefix,
        namespace=NAMESPACE,
        shards=CLUSTER_INDEX_SHARDS if deployment.kind == CLUSTER else 1,
        timeout=settings.redis_timeout * 4,
        colocated=deployment.kind != CLUSTER,
    )


def build_coherence(
    settings: Settings,
    deployment: RedisDeployment,
    store: TieredStore,
    metrics: Metrics,
    events: EventLog | None,
) -> Coherence:
    """Invalidation tracking for session keys (the keys other replicas change): the prefixes
    the store was built to expect echoes for (`build_store(coherent=True)`)."""
    return Coherence(
        deployment,
        store,
        prefixes=[settings.redis_key_prefix + prefix for prefix in store.guard.tracked_prefixes],
        key_prefix=settings.redis_key_prefix,
        metrics=metrics,
        events=events,
        timeout=settings.redis_timeout,
        retry_interval=settings.redis_retry_interval,
    )


@asynccontextmanager
async def open_session_layer(
    settings: Settings,
    metrics: Metrics,
    events: EventLog,
    *,
    coherence: bool = True,
    journal_dir: Path | None = None,
) -> AsyncIterator[SessionLayer]:
    """`coherence=False` leaves invalidation tracking off (benchmarks; a single replica);
    `journal_dir` goes to `build_store`."""
    deployment = create_redis_client(settings) if settings.redis_url else None
    client = deployment.client if deployment is not None else None
    try:
        index = build_index(settings, deployment) if deployment is not None else None
        store = build_store(
            settings,
            metrics,
            events,
            client,
            journal_dir=journal_dir,
            index=index,
            coherent=coherence and deployment is not None,
            resend_after_switch=deployment is not None and deployment.kind in (SENTINEL, CLUSTER),
        )
        instrumentation = Instrumentation(
            metrics,
            "session",
            window_size=settings.window_size,
            slow_threshold_ms=settings.slow_threshold_ms,
            events=events,
        )
        manager = SessionManager(
            store, instrumentation, metrics, default_ttl=settings.session_ttl, index=index
        )
        tracker = watch = None
        await store.start()
        try:
            if deployment is None:
                log.info("session store: memory only (no --redis-url)")
            else:
                log.info(
                    "session store: memory tier in front of %s (%s)",
                    settings.redis_url_redacted,
                    deployment.kind,
                )
                if coherence:
                    tracker = build_coherence(settings, deployment, store, metrics, events)
                    await tracker.start()
                assert index is not None
                await index.start()
                watch = _master_watch(settings, deployment, _on_switch(store, tracker))
                if watch is not None:
                    await watch.start()
                if isinstance(watch, ClusterWatch) and store.recovery is not None:
                    store.recovery.before_replay = watch.before_replay
            yield SessionLayer(
                store, manager, client, instrumentation, deployment, tracker, index, watch
            )
        finally:
            if watch is not None:
                await watch.close()
            if index is not None:
                await index.close()
            if tracker is not None:
                await tracker.close()
            await store.close()
    finally:
        if deployment is not None:
            await deployment.aclose()


def _master_watch(
    settings: Settings, deployment: RedisDeployment, on_switch: Switched
) -> SentinelWatch | ClusterWatch | None:
    """What hears the master move: Sentinel's announcements, a Cluster's primaries changing."""
    timeout = settings.redis_timeout * 4
    if deployment.kind == SENTINEL:
        return SentinelWatch(
            deployment, on_switch, retry_interval=settings.redis_retry_interval, timeout=timeout
        )
    if deployment.kind == CLUSTER:
        return ClusterWatch(deployment, on_switch, timeout=timeout)
    return None


def _on_switch(store: TieredStore, tracker: Coherence | None) -> Switched:
    """A master switch (Sentinel, Cluster): the store stops writing to the old master, and
    tracking moves to the new one (memory bypassed until it has)."""

    async def switched(reason: str) -> None:
        if tracker is not None:
            tracker.primaries_moved()
        await store.master_switched(reason)

    return switched
