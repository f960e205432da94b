"""SessionManager: create, get, update, delete and expire sessions in the tiered store.

Every operation is recorded once through `Instrumentation` (histogram, errors by type, slow
operations, rolling window), plus the per-outcome counters and cache lookups by tier. The hot path
(a memory hit) touches only pre-bound children.

    manager = SessionManager(store, Instrumentation(metrics, "session"), metrics, default_ttl=3600)
    session = await manager.create({"user": "ada"}, ttl=60)
    assert (await manager.get(session.id)).data == {"user": "ada"}
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from exporter.core.access_stats import AccessStats
from exporter.core.errors import (
    UNREADABLE_CAUSES,
    SessionNotFound,
    SessionUnreadable,
    UnreadableValue,
)
from exporter.core.instrumentation import Instrumentation
from exporter.core.metrics import Metrics
from exporter.sessions.held_sessions import HeldSessions
from exporter.sessions.session import ID_PATTERN, NAMESPACE, Session, session_key, valid_id
from exporter.store.contract import StoredValue
from exporter.store.redis_client import REDIS_FAILURES
from exporter.store.tiered_store import TieredStore

if TYPE_CHECKING:
    from exporter.store.session_index import SessionIndex

log = logging.getLogger(__name__)

MAX_TTL = 366 * 24 * 3600.0
_perf_counter = time.perf_counter
_match_id = ID_PATTERN.fullmatch


def check_ttl(ttl: Any) -> float:
    """A TTL in seconds: a finite number > 0 and at most a year; ValueError otherwise."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl):
        raise ValueError("ttl must be a number of seconds")
    if not 0 < ttl <= MAX_TTL:
        raise ValueError(f"ttl must be greater than 0 and at most {MAX_TTL:.0f} seconds")
    return float(ttl)


class SessionManager:
    def __init__(
        self,
        store: TieredStore,
        instrumentation: Instrumentation,
        metrics: Metrics,
        *,
        default_ttl: float = 3600.0,
        id_bytes: int = 24,
        index: SessionIndex | None = None,
    ) -> None:
        """With `index` (the Redis index shared by replicas), live and expired sessions are
        counted across replicas; without, in this replica's memory tier."""
        self.store = store
        self.instrumentation = instrumentation
        self.default_ttl = default_ttl
        self.id_bytes = id_bytes
        self._record = instrumentation.record
        self._record_cache = instrumentation.record_cache
        self._get_cached = store.reads.get
        self._created = metrics.sessions_created
        self._retrieved = metrics.sessions_retrieved
        self._updated = metrics.sessions_updated
        self._deleted = metrics.sessions_deleted
        self._expired = metrics.sessions_expired
        self._unreadable = {
            cause: metrics.sessions_unreadable.labels(cause) for cause in UNREADABLE_CAUSES
        }
        self._unreadable_logged: set[str] = set()
        self.access = AccessStats()
        # The hottest path, a decoded memory hit: synchronous (the HTTP route creates no
        # coroutine for it), compilable, and recorded in one call.
        self.get_held = HeldSessions(
            store.reads,
            instrumentation.hit_recorder(
                "get", "memory", metrics.sessions_retrieved.child(), self.access
            ),
        ).get
        self.index = index
        self.active_count: Callable[[], int] = (
            index.active if index is not None else self._memory_active_count
        )
        if index is not None:
            index.subscribe_expired(self._count_expired)
        store.add_expiry_listener(NAMESPACE, self._on_expired)
        metrics.sessions_active.set_function(self.active_count)

    async def create(
        self, data: dict[str, Any], ttl: float | None = None, *, session_id: str | None = None
    ) -> Session:
        """A new session; `session_id` None draws a random one. A given id must be `valid_id`
        (ValueError otherwise) and unguessable: a session already stored under it is replaced."""
        started = _perf_counter()
        try:
            session = await self._create(data, ttl, session_id)
        except Exception as exc:
            self.instrumentation.record_exception("create", started, exc)
            raise
        now = _perf_counter()
        self._record("create", now - started)
        self.access.write(session.id, now - started, now)
        self._created.inc()
        return session

    async def get(self, session_id: str) -> Session:
        """The live session; SessionNotFound if unknown or expired, StoreUnavailable during an
        outage when only Redis could know."""
        session = self.get_held(session_id)
        if session is not None:
            return session
        started = _perf_counter()
        key = session_key(session_id)
        value = self._get_cached(key)
        try:
            session = await self._get_slow(session_id, key, value)
        except Exception as exc:
            self.instrumentation.record_exception("get", started, exc)
            raise
        now = _perf_counter()
        self._record("get", now - started)
        record = self.access.memory_read if value is not None else self.access.other_read
        record(session_id, now - started, now)
        self._retrieved.inc()
        return session

    async def _get_slow(self, session_id: str, key: str, cached: StoredValue | None) -> Session:
        if cached is not None:  # held but not decoded yet
            self._record_cache("memory", True)
            return self._decode(session_id, cached)
        if _match_id(session_id) is None:  # never stored: no lookup beyond the memory miss
            self._record_cache("memory", False)
            raise SessionNotFound(f"session {session_id!r} not found")
        # The store's one read: memory (a parked own write once confirmed), journal, Redis.
        value = await self._read(session_id, key)
        if value is None:
            await self._gone(session_id)
        return self._decode(session_id, value)

    async def update(
        self, session_id: str, data: dict[str, Any], ttl: float | None = None
    ) -> Session:
        """Replace the data; the expiry stays unless a new `ttl` is given."""
        started = _perf_counter()
        try:
            session = await self._update(session_id, data, ttl)
        except Exception as exc:
            self.instrumentation.record_exception("update", started, exc)
            raise
        now = _perf_counter()
        self._record("update", now - started)
        self.access.write(session_id, now - started, now)
        self._updated.inc()
        return session

    async def delete(self, session_id: str) -> None:
        started = _perf_counter()
        try:
            if not valid_id(session_id):
                raise SessionNotFound(f"session {session_id!r} not found")
            if not await self.store.delete(session_key(session_id)):
                await self._gone(session_id)
                raise SessionNotFound(f"session {session_id!r} not found")
        except Exception as exc:
            self.instrumentation.record_exception("delete", started, exc)
            raise
        self._record("delete", _perf_counter() - started)
        self.access.forget(session_id)
        self._deleted.inc()

    async def exists(self, session_id: str) -> bool:
        """Whether the session is live, without counting a read (for the statistics endpoint)."""
        if not valid_id(session_id):
            return False
        return await self.store.get(session_key(session_id)) is not None

    def _memory_active_count(self) -> int:
        return self.store.memory.count(NAMESPACE)

    async def _create(
        self, data: dict[str, Any], ttl: float | None, session_id: str | None
    ) -> Session:
        _check_data(data)
        lifetime = self.default_ttl if ttl is None else check_ttl(ttl)
        if session_id is not None and not valid_id(session_id):
            raise ValueError("a session id is 1 to 128 of the characters A-Z a-z 0-9 _ -")
        now = self.store.clock.now()
        chosen = session_id or secrets.token_urlsafe(self.id_bytes)
        session = Session(chosen, data, now, now + lifetime)
        value = await self.store.set(
            session_key(session.id),
            session.to_document(),
            lifetime,
            session,
            expires_at=session.expires_at,
            # A new random id: nobody else can write it before our answer. A chosen id may be
            # known elsewhere already, so its echo is checked like an update's.
            sole=session_id is None,
        )
        session.version = value.version
        return session

    async def _update(self, session_id: str, data: dict[str, Any], ttl: float | None) -> Session:
        _check_data(data)
        lifetime = None if ttl is None else check_ttl(ttl)
        if not valid_id(session_id):
            raise SessionNotFound(f"session {session_id!r} not found")
        key = NAMESPACE + "{" + session_id + "}"
        held = await self._read(session_id, key)
        if held is None:
            await self._gone(session_id)
        current = self._decode(session_id, held)
        now = self.store.clock.now()
        expires_at = current.expires_at if lifetime is None else now + lifetime
        session = Session(session_id, data, current.created_at, expires_at)
        value = await self.store.set(
            key,
            session.to_document(),
            expires_at - now,
            session,
            expires_at=expires_at,
            replace=True,
            after=current.version,
        )
        session.version = value.version
        return session

    async def _gone(self, session_id: str) -> None:
        """A session not found may have just expired: with an index, claim that expiry now
        (counted here unless another replica already did; if this fails, a sweep counts it)."""
        if self.index is not None and not self.store.fallback_active:
            with contextlib.suppress(*REDIS_FAILURES):
                await self.index.claim(session_id)

    async def _read(self, session_id: str, key: str) -> StoredValue | None:
        try:
            return await self.store.get(key, self._record_cache)
        except UnreadableValue as exc:
            raise self._unreadable_session(session_id, exc) from None

    def _decode(self, session_id: str, value: StoredValue | None) -> Session:
        if value is None:
            raise SessionNotFound(f"session {session_id!r} not found")
        session = value.decoded
        if session is None:
            try:
                session = value.decoded = Session.from_document(
                    session_id, value.payload, value.version
                )
            except UnreadableValue as exc:
                raise self._unreadable_session(session_id, exc) from None
        return session  # type: ignore[return-value]

    def _unreadable_session(self, session_id: str, exc: UnreadableValue) -> SessionUnreadable:
        """Count it; log the first of each cause (a damaged keyspace would flood the log). The
        session id is left out of the log: it is the bearer's credential."""
        self._unreadable[exc.cause].inc()
        if exc.cause not in self._unreadable_logged:
            self._unreadable_logged.add(exc.cause)
            log.warning(
                "%s; answered as an unknown session (further ones with this cause are only"
                ' counted: session_exporter_sessions_unreadable_total{cause="%s"})',
                exc,
                exc.cause,
            )
        return SessionUnreadable(f"session {session_id!r} not found (unreadable)", exc.cause)

    def _on_expired(self, key: str, value: StoredValue) -> None:
        if self.index is not None:
            return  # a memory copy running out proves nothing across replicas: the index counts
        started = _perf_counter()
        self._expired.inc()
        self._record("expire", _perf_counter() - started)

    def _count_expired(self, count: int, seconds: float) -> None:
        """Expiries this replica claimed from the index (each is claimed by exactly one)."""
        self._expired.inc(count)
        for _ in range(count):
            self._record("expire", seconds / count)


def _check_data(data: Any) -> None:
    if not isinstance(data, dict):
        raise ValueError("session data must be a JSON object")
