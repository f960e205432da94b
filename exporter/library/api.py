"""The tiered store and SessionManager for your own application, from plain arguments.

The same wiring the exporter's service uses (`factory.open_session_layer`: the memory tier in
front of Redis, fallback, replay, coherence across instances, the `session_exporter_*` metrics),
without the CLI `Settings`:

    >>> import asyncio
    >>> async def main() -> None:
    ...     async with open_session_manager(ttl=60) as manager:  # memory only: no redis_url
    ...         session = await manager.create({"user": "ada"})
    ...         print((await manager.get(session.id)).data)
    >>> asyncio.run(main())
    {'user': 'ada'}

A `StoreUnavailable` (raised only while Redis is down, for a session this process does not hold)
carries `retry_after` seconds: answer 503 with a `Retry-After` header, never "not found".
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from exporter.core.event_log import EventLog
from exporter.core.metrics import Metrics
from exporter.core.settings import OPTIONS_BY_NAME, Settings
from exporter.sessions.factory import SessionLayer, open_session_layer
from exporter.sessions.manager import SessionManager
from exporter.store.tiered_store import TieredStore

# Events kept in memory for a library user (nothing reads them but the metrics they count).
EVENT_LOG_SIZE = 100

# The defaults of every store argument below (and of TieredStorage's) are the service's: read
# from the settings' declarations, so a default changed there changes here too.
DEFAULTS = Settings()

# Library argument -> the Settings field it sets (validated by that setting's own parser).
_FIELDS = {
    "redis_url": "redis_url",
    "ttl": "session_ttl",
    "memory_max_entries": "memory_max_entries",
    "memory_max_bytes": "memory_max_bytes",
    "redis_timeout": "redis_timeout",
    "redis_retry_interval": "redis_retry_interval",
    "replay_max_entries": "replay_max_entries",
    "key_prefix": "redis_key_prefix",
}


def store_settings(**arguments: Any) -> Settings:
    """Library arguments -> Settings; ConfigError names the bad argument (not a CLI flag)."""
    values: dict[str, Any] = {}
    for name, raw in arguments.items():
        field = _FIELDS[name]
        if raw is not None:
            values[field] = OPTIONS_BY_NAME[field].parse(name, raw)
    return Settings(**values)


@asynccontextmanager
async def _open_layer(
    settings: Settings,
    *,
    journal_dir: str | os.PathLike[str] | None,
    registry: CollectorRegistry | None,
    coherence: bool,
) -> AsyncIterator[SessionLayer]:
    """Everything `open_session_manager` opens (store, manager, Redis client, coherence)."""
    # No registry: the instruments still count (status, health) but nothing exposes them.
    metrics = Metrics(registry if registry is not None else CollectorRegistry())
    events = EventLog(EVENT_LOG_SIZE, metrics)
    async with open_session_layer(
        settings,
        metrics,
        events,
        coherence=coherence,
        journal_dir=Path(journal_dir) if journal_dir is not None else None,
    ) as layer:
        yield layer


@asynccontextmanager
async def open_session_manager(
    redis_url: str | None = None,
    *,
    ttl: float = DEFAULTS.session_ttl,
    memory_max_entries: int = DEFAULTS.memory_max_entries,
    memory_max_bytes: int = DEFAULTS.memory_max_bytes,
    journal_dir: str | os.PathLike[str] | None = DEFAULTS.journal_dir,
    redis_timeout: float = DEFAULTS.redis_timeout,
    redis_retry_interval: float = DEFAULTS.redis_retry_interval,
    replay_max_entries: int = DEFAULTS.replay_max_entries,
    key_prefix: str = DEFAULTS.redis_key_prefix,
    registry: CollectorRegistry | None = None,
    coherence: bool = True,
) -> AsyncIterator[SessionManager]:
    """A started SessionManager over a tiered store; closed (journal replayed if it can be) on
    exit.

    `redis_url` None keeps sessions in memory only. `ttl` is the default session lifetime in
    seconds; `memory_max_entries`/`memory_max_bytes` bound the memory tier; `redis_timeout` is
    the seconds one Redis command may take before Redis counts as down; `key_prefix` starts
    every Redis key. `journal_dir` is the crash-safe outage journal's directory (one process per
    directory; None keeps the journal in memory, lost if the process dies during an outage).
    The `session_exporter_*` metrics go on `registry` (one store per registry); `coherence`
    False turns off invalidation tracking (a single instance only).

        async with open_session_manager("redis://127.0.0.1:6379/0", registry=registry) as sm:
            session = await sm.create({"user": "ada"}, ttl=600)
            await sm.update(session.id, {"user": "ada", "cart": [1]})
            await sm.get(session.id)  # SessionNotFound, or StoreUnavailable during an outage
    """
    settings = store_settings(
        redis_url=redis_url,
        ttl=ttl,
        memory_max_entries=memory_max_entries,
        memory_max_bytes=memory_max_bytes,
        redis_timeout=redis_timeout,
        redis_retry_interval=redis_retry_interval,
        replay_max_entries=replay_max_entries,
        key_prefix=key_prefix,
    )
    async with _open_layer(
        settings, journal_dir=journal_dir, registry=registry, coherence=coherence
    ) as layer:
        yield layer.manager


@asynccontextmanager
async def open_store(
    redis_url: str | None = None,
    *,
    memory_max_entries: int = DEFAULTS.memory_max_entries,
    memory_max_bytes: int = DEFAULTS.memory_max_bytes,
    journal_dir: str | os.PathLike[str] | None = DEFAULTS.journal_dir,
    redis_timeout: float = DEFAULTS.redis_timeout,
    redis_retry_interval: float = DEFAULTS.redis_retry_interval,
    replay_max_entries: int = DEFAULTS.replay_max_entries,
    key_prefix: str = DEFAULTS.redis_key_prefix,
    registry: CollectorRegistry | None = None,
    coherence: bool = True,
) -> AsyncIterator[TieredStore]:
    """A started tiered key/value store (bytes with a TTL per key); arguments as for
    `open_session_manager`. Keys under `s:` are the SessionManager's; coherence across
    instances (invalidation tracking) covers those only, other keys are read-through copies.

        async with open_store("redis://127.0.0.1:6379/0") as store:
            await store.set("cart:{ada}", b"[1, 2]", ttl=600)
            (await store.get("cart:{ada}")).payload  # b"[1, 2]"
    """
    settings = store_settings(
        redis_url=redis_url,
        memory_max_entries=memory_max_entries,
        memory_max_bytes=memory_max_bytes,
        redis_timeout=redis_timeout,
        redis_retry_interval=redis_retry_interval,
        replay_max_entries=replay_max_entries,
        key_prefix=key_prefix,
    )
    async with _open_layer(
        settings, journal_dir=journal_dir, registry=registry, coherence=coherence
    ) as layer:
        yield layer.store
