"""Builds the session layer: the Redis client (the only place one is created), the tiered store,
the instrumented SessionManager; starts their background tasks and closes everything.

    async with open_session_layer(settings, metrics, events) as layer:
        session = await layer.manager.create({"user": "ada"})
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from exporter.config import Settings
from exporter.errors import ConfigError
from exporter.events import EventLog
from exporter.instrumentation import Instrumentation
from exporter.metrics import Metrics
from exporter.sessions.breaker import CircuitBreaker
from exporter.sessions.manager import NAMESPACE, SessionManager
from exporter.sessions.memory_store import MemoryStore
from exporter.sessions.redis_store import RedisStore
from exporter.sessions.tiered_store import TieredStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SessionLayer:
    store: TieredStore
    manager: SessionManager
    redis: aioredis.Redis | None
    instrumentation: Instrumentation


def create_redis_client(settings: Settings) -> aioredis.Redis:
    """The Redis client for `settings.redis_url`: short timeouts, no retries (the breaker decides)."""
    url = settings.redis_url
    assert url is not None
    scheme = url.split("://", 1)[0]
    if "+" in scheme:
        # Cluster and Sentinel URLs are accepted by the settings; their clients are built here too
        # once supported, so everything above keeps receiving one `redis.asyncio` client.
        raise ConfigError("--redis-url", f"scheme {scheme!r} is not supported yet")
    return aioredis.from_url(
        url,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
    )


def build_store(
    settings: Settings,
    metrics: Metrics | None,
    events: EventLog | None,
    client: aioredis.Redis | None,
) -> TieredStore:
    memory = MemoryStore(
        settings.memory_max_entries, settings.memory_max_bytes, counted_prefixes=(NAMESPACE,)
    )
    redis_tier = (
        RedisStore(client, prefix=settings.redis_key_prefix, timeout=settings.redis_timeout)
        if client
        else None
    )
    return TieredStore(
        memory,
        redis_tier,
        breaker=CircuitBreaker(settings.redis_retry_interval),
        replay_max_entries=settings.replay_max_entries,
        metrics=metrics,
        events=events,
    )


@asynccontextmanager
async def open_session_layer(
    settings: Settings, metrics: Metrics, events: EventLog
) -> AsyncIterator[SessionLayer]:
    client = create_redis_client(settings) if settings.redis_url else None
    try:
        store = build_store(settings, metrics, events, client)
        instrumentation = Instrumentation(
            metrics,
            "session",
            window_size=settings.window_size,
            slow_threshold_ms=settings.slow_threshold_ms,
            events=events,
        )
        manager = SessionManager(store, instrumentation, metrics, default_ttl=settings.session_ttl)
        await store.start()
        if client is None:
            log.info("session store: memory only (no --redis-url)")
        else:
            log.info("session store: memory tier in front of %s", settings.redis_url_redacted)
        try:
            yield SessionLayer(store, manager, client, instrumentation)
        finally:
            await store.close()
    finally:
        if client is not None:
            await client.aclose()
