"""aiohttp-session storage on the tiered store: sessions that survive Redis outages.

Needs the extra: `pip install 'session-metrics-exporter[aiohttp-session]'`.

    storage = TieredStorage(redis_url="redis://127.0.0.1:6379/0", registry=registry)
    aiohttp_session.setup(app, storage)
    app.cleanup_ctx.append(storage.cleanup_ctx)  # opens the store on start-up, closes it after

The cookie holds the session id, nothing else. Each request reads the session from the memory
tier when this instance holds it (no Redis round trip), and a changed session is written through
to Redis (journalled and replayed if Redis is down). A session this instance does not hold cannot
be read while Redis is down: the request gets 503 with `Retry-After`, never a new empty session
(which would log the user out and overwrite the real one once Redis is back).
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, suppress
from typing import Any

import orjson
from aiohttp import web
from aiohttp_session import AbstractStorage, Session
from prometheus_client import CollectorRegistry

from exporter.core.errors import SessionNotFound, StoreUnavailable
from exporter.library.api import open_session_manager
from exporter.sessions.manager import SessionManager
from exporter.sessions.session import Session as StoredSession

# Without a cookie max_age (a browser-session cookie), how long the store keeps a session.
DEFAULT_TTL = 24 * 3600.0


class TieredSession(Session):
    """An aiohttp-session Session that remembers what was loaded, so an unchanged one is not
    written back."""

    def __init__(self, identity: str | None, *, stored: StoredSession | None, **kwargs: Any):
        super().__init__(identity, **kwargs)
        self.stored = stored


class TieredStorage(AbstractStorage):
    """`aiohttp_session.AbstractStorage` over `exporter.open_session_manager`.

    Store arguments are `open_session_manager`'s (`ttl` is used when `max_age` is None); cookie
    arguments are aiohttp-session's. Pass `manager` to share a SessionManager you opened
    yourself (then `cleanup_ctx` neither opens nor closes it).
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        registry: CollectorRegistry | None = None,
        ttl: float = DEFAULT_TTL,
        memory_max_entries: int = 100_000,
        memory_max_bytes: int = 256 * 1024 * 1024,
        journal_dir: str | os.PathLike[str] | None = None,
        redis_timeout: float = 0.25,
        redis_retry_interval: float = 0.5,
        key_prefix: str = "sme:",
        manager: SessionManager | None = None,
        cookie_name: str = "AIOHTTP_SESSION",
        domain: str | None = None,
        max_age: int | None = None,
        path: str = "/",
        secure: bool | None = None,
        httponly: bool = True,
        samesite: str | None = None,
    ) -> None:
        super().__init__(
            cookie_name=cookie_name,
            domain=domain,
            max_age=max_age,
            path=path,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
        )
        self.ttl = ttl
        self._options: dict[str, Any] = {
            "ttl": ttl,
            "memory_max_entries": memory_max_entries,
            "memory_max_bytes": memory_max_bytes,
            "journal_dir": journal_dir,
            "redis_timeout": redis_timeout,
            "redis_retry_interval": redis_retry_interval,
            "key_prefix": key_prefix,
            "registry": registry,
        }
        self._redis_url = redis_url
        self._manager = manager

    @property
    def manager(self) -> SessionManager:
        if self._manager is None:
            raise RuntimeError(
                "TieredStorage not started: app.cleanup_ctx.append(storage.cleanup_ctx)"
            )
        return self._manager

    async def cleanup_ctx(self, app: web.Application) -> AsyncIterator[None]:
        """Open the store when the app starts, close it (replaying what it can) when it stops."""
        async with AsyncExitStack() as stack:
            if self._manager is None:
                self._manager = await stack.enter_async_context(
                    open_session_manager(self._redis_url, **self._options)
                )
                stack.callback(setattr, self, "_manager", None)
            yield

    async def new_session(self) -> TieredSession:
        return TieredSession(None, stored=None, data=None, new=True, max_age=self.max_age)

    async def load_session(self, request: web.Request) -> Session:
        session_id = self.load_cookie(request)
        if not session_id:
            return await self.new_session()
        try:
            stored = await self.manager.get(session_id)
        except SessionNotFound:
            return await self.new_session()
        except StoreUnavailable as exc:
            raise unavailable(exc) from None
        return TieredSession(
            session_id,
            stored=stored,
            data=_private_copy(stored.data),
            new=False,
            max_age=self.max_age,
        )

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: Session
    ) -> None:
        try:
            await self._save(response, session)
        except StoreUnavailable as exc:
            raise unavailable(exc) from None

    async def _save(self, response: web.StreamResponse, session: Session) -> None:
        identity = session.identity
        if session.empty:
            if identity is not None:
                await self._delete(str(identity))
            self.save_cookie(response, "", max_age=session.max_age)
            return
        data = {"created": session.created, "session": session._mapping}
        ttl = float(session.max_age) if session.max_age else self.ttl
        stored = session.stored if isinstance(session, TieredSession) else None
        if identity is None or stored is None:
            stored = await self.manager.create(data, ttl=ttl)
            if session.new:
                session.set_new_identity(stored.id)
        elif _unchanged(stored, data, ttl, self.manager.store.clock.now()):
            pass  # `changed()` without a change: no write (the expiry is still far off)
        else:
            stored = await self._update(stored.id, data, ttl)
        self.save_cookie(response, stored.id, max_age=session.max_age)

    async def _update(self, session_id: str, data: dict[str, Any], ttl: float) -> StoredSession:
        try:
            return await self.manager.update(session_id, data, ttl=ttl)
        except SessionNotFound:  # expired or deleted since it was loaded: start a new one
            return await self.manager.create(data, ttl=ttl)

    async def _delete(self, session_id: str) -> None:
        with suppress(SessionNotFound):
            await self.manager.delete(session_id)


def unavailable(exc: StoreUnavailable) -> web.HTTPServiceUnavailable:
    """503 with Retry-After and the project's JSON error body (no session id in it)."""
    body = {"error": {"code": exc.code, "message": "session store unavailable; retry later"}}
    return web.HTTPServiceUnavailable(
        headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
        text=orjson.dumps(body).decode(),
        content_type="application/json",
    )


def _unchanged(stored: StoredSession, data: dict[str, Any], ttl: float, now: float) -> bool:
    """Same session data as loaded, and more than half its lifetime left (else refresh it)."""
    loaded = stored.data.get("session")
    return loaded == data["session"] and stored.expires_at - now > ttl / 2


def _private_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy the handler may change: the stored session is shared with the memory tier."""
    inner = data.get("session")
    if isinstance(inner, dict) and any(isinstance(v, dict | list) for v in inner.values()):
        return orjson.loads(orjson.dumps(data))  # type: ignore[no-any-return]
    return {"created": data.get("created"), "session": dict(inner or {})}
