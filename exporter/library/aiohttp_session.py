"""aiohttp-session storage on the tiered store: sessions that survive Redis outages.

Needs the extra: `pip install 'session-metrics-exporter[aiohttp-session]'`.

    storage = TieredStorage(redis_url="redis://127.0.0.1:6379/0", registry=registry)
    aiohttp_session.setup(app, storage)
    app.cleanup_ctx.append(storage.cleanup_ctx)  # opens the store on start-up, closes it after

The cookie holds the session id, nothing else. Each request reads the session from the memory
tier when this instance holds it (no Redis round trip), and a changed session is written through
to Redis (journalled and replayed if Redis is down). A session this instance does not hold cannot
be read while Redis is down: the request gets 503 with `Retry-After`, never a new empty session
(which would log the user out and overwrite the real one once Redis is back). A stored value that
cannot be read (damaged, or another program's) is no session: the visitor gets a new one.

Differences from aiohttp-session's `RedisStorage` (docs/library.md, "Migrating from
RedisStorage"): expiry follows the fleet's clock (Redis's time), not `time.time`, so a test that
patches `time.time` moves aiohttp-session's own `max_age` check but not the store's expiry;
an invalidated session is deleted, not stored as `{}`; the session's repr names `TieredSession`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, suppress
from typing import Any, TypeVar

import orjson
from aiohttp import web
from aiohttp_session import AbstractStorage, Session
from prometheus_client import CollectorRegistry

from exporter.core.errors import ConfigError, SessionNotFound, StoreUnavailable
from exporter.library.api import DEFAULTS, open_session_manager, store_settings
from exporter.sessions.manager import SessionManager
from exporter.sessions.session import Session as StoredSession
from exporter.sessions.session import valid_id

log = logging.getLogger(__name__)

# Without a cookie max_age (a browser-session cookie, which lives until the browser closes), how
# long the store keeps a session after its last write: longer than the service's `session_ttl`,
# whose sessions are API tokens rather than a browser's.
BROWSER_SESSION_TTL = 24 * 3600.0
ID_RULE = "session ids are 1 to 128 of the characters A-Z a-z 0-9 _ -"

HttpError = TypeVar("HttpError", bound=web.HTTPException)
Encoder = Callable[[object], str]
Decoder = Callable[[str], Any]


class TieredSession(Session):
    """An aiohttp-session Session that remembers what was loaded, so an unchanged one is not
    written back. Its repr names this class (`<TieredSession [new:..., ...] {...}>`)."""

    def __init__(self, identity: Any, *, stored: StoredSession | None = None, **kwargs: Any):
        super().__init__(identity, **kwargs)
        self.stored = stored


class TieredStorage(AbstractStorage):
    """`aiohttp_session.AbstractStorage` over `exporter.open_session_manager`.

    Store arguments are `open_session_manager`'s, with its defaults (the service's settings);
    `ttl` is used when `max_age` is None. Cookie arguments, `key_factory`, `encoder` and `decoder`
    are aiohttp-session's (`RedisStorage`'s). Pass `manager` to share a SessionManager you opened
    yourself (then `cleanup_ctx` neither opens nor closes it).
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        registry: CollectorRegistry | None = None,
        ttl: float = BROWSER_SESSION_TTL,
        memory_max_entries: int = DEFAULTS.memory_max_entries,
        memory_max_bytes: int = DEFAULTS.memory_max_bytes,
        journal_dir: str | os.PathLike[str] | None = DEFAULTS.journal_dir,
        redis_timeout: float = DEFAULTS.redis_timeout,
        redis_retry_interval: float = DEFAULTS.redis_retry_interval,
        replay_max_entries: int = DEFAULTS.replay_max_entries,
        key_prefix: str = DEFAULTS.redis_key_prefix,
        manager: SessionManager | None = None,
        cookie_name: str = "AIOHTTP_SESSION",
        domain: str | None = None,
        max_age: int | None = None,
        path: str = "/",
        secure: bool | None = None,
        httponly: bool = True,
        samesite: str | None = None,
        key_factory: Callable[[], str] | None = None,
        encoder: Encoder | None = None,
        decoder: Decoder | None = None,
    ) -> None:
        super().__init__(
            cookie_name=cookie_name,
            domain=domain,
            max_age=max_age,
            path=path,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
            **_codec(encoder, decoder),
        )
        self.ttl = ttl
        self._options: dict[str, Any] = {
            "ttl": ttl,
            "memory_max_entries": memory_max_entries,
            "memory_max_bytes": memory_max_bytes,
            "journal_dir": journal_dir,
            "redis_timeout": redis_timeout,
            "redis_retry_interval": redis_retry_interval,
            "replay_max_entries": replay_max_entries,
            "key_prefix": key_prefix,
            "registry": registry,
        }
        store_settings(redis_url=redis_url, **_store_arguments(self._options))  # fail early
        self._redis_url = redis_url
        self._manager = manager
        self._key_factory = _checked_factory(key_factory)
        self._custom_encoder, self._custom_decoder = encoder, decoder

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
        return TieredSession(None, data=None, new=True, max_age=self.max_age)

    async def load_session(self, request: web.Request) -> Session:
        session_id = self.load_cookie(request)
        if not session_id:
            return await self.new_session()
        try:
            stored = await self.manager.get(session_id)
            data = self._decoded(stored.data)
        except SessionNotFound:  # unknown, expired, or unreadable (counted and logged)
            return await self.new_session()
        except StoreUnavailable as exc:
            raise unavailable(exc) from None
        return TieredSession(session_id, stored=stored, data=data, new=False, max_age=self.max_age)

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
        data = self._encoded({"created": session.created, "session": session._mapping})
        ttl = float(session.max_age) if session.max_age else self.ttl
        stored = session.stored if isinstance(session, TieredSession) else None
        if identity is None or stored is None:
            stored = await self.manager.create(data, ttl=ttl, session_id=self._new_id())
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
            return await self.manager.create(data, ttl=ttl, session_id=self._new_id())

    async def _delete(self, session_id: str) -> None:
        with suppress(SessionNotFound):
            await self.manager.delete(session_id)

    def _new_id(self) -> str | None:
        """A new session's id: the key factory's (checked), or None for the store's random one."""
        if self._key_factory is None:
            return None
        made = self._key_factory()
        problem = _id_problem(made)
        if problem is not None:
            # The app's own bug, on every new session: a clear 500, never a Redis key we could
            # not read back (a `{` breaks the hash tag). The id itself is a credential: not logged.
            log.error("key_factory %s; %s", problem, ID_RULE)
            raise _json_error(web.HTTPInternalServerError, "invalid_session_id", "server error")
        assert isinstance(made, str)
        return made

    def _encoded(self, data: dict[str, Any]) -> dict[str, Any]:
        """The data as stored: JSON, through the app's encoder when it gave one (its output must
        be JSON text of an object: the store keeps sessions as JSON documents)."""
        if self._custom_encoder is None:
            return data
        text = self._custom_encoder(data)
        try:
            encoded = orjson.loads(text)
        except orjson.JSONDecodeError:
            encoded = None
        if not isinstance(encoded, dict):
            log.error("encoder must return JSON text of an object (the store keeps JSON)")
            raise _json_error(web.HTTPInternalServerError, "invalid_session_data", "server error")
        return encoded

    def _decoded(self, stored: dict[str, Any]) -> dict[str, Any]:
        """The loaded data for the handler: through the app's decoder when it gave one, else a
        private copy (the stored session is shared with the memory tier)."""
        if self._custom_decoder is None:
            return _private_copy(stored)
        try:
            decoded: dict[str, Any] = self._custom_decoder(orjson.dumps(stored).decode())
        except ValueError:
            # As RedisStorage does with what its decoder refuses: no session data.
            log.warning("decoder refused a stored session; answered as a new session")
            raise SessionNotFound("session data refused by the decoder") from None
        return decoded


def unavailable(exc: StoreUnavailable) -> web.HTTPServiceUnavailable:
    """503 with Retry-After and the project's JSON error body (no session id in it)."""
    error = _json_error(
        web.HTTPServiceUnavailable, exc.code, "session store unavailable; retry later"
    )
    error.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return error


def _json_error(kind: type[HttpError], code: str, message: str) -> HttpError:
    body = {"error": {"code": code, "message": message}}
    return kind(text=orjson.dumps(body).decode(), content_type="application/json")


def _codec(encoder: Encoder | None, decoder: Decoder | None) -> dict[str, Any]:
    """aiohttp-session's own encoder/decoder arguments, only those given (its defaults else)."""
    given = {"encoder": encoder, "decoder": decoder}
    return {name: function for name, function in given.items() if function is not None}


def _checked_factory(key_factory: Callable[[], str] | None) -> Callable[[], str] | None:
    """Fail at start-up, naming the argument, on a factory whose first id could not be stored
    (one id is drawn and discarded for the check)."""
    if key_factory is None:
        return None
    if not callable(key_factory):
        raise ConfigError("key_factory", "must be a function returning a new session id")
    problem = _id_problem(key_factory())
    if problem is not None:
        raise ConfigError("key_factory", f"it {problem}; {ID_RULE}")
    return key_factory


def _id_problem(made: object) -> str | None:
    """What is wrong with an id a key factory made, without quoting it (it is a credential)."""
    if not isinstance(made, str):
        return f"returned a {type(made).__name__}, not a str"
    if not valid_id(made):
        return f"returned a str of {len(made)} characters that is not a valid id"
    return None


def _store_arguments(options: dict[str, Any]) -> dict[str, Any]:
    """The options `store_settings` checks (the others are not settings)."""
    return {
        name: value for name, value in options.items() if name not in ("journal_dir", "registry")
    }


def _unchanged(stored: StoredSession, data: dict[str, Any], ttl: float, now: float) -> bool:
    """Same session data as loaded, and more than half its lifetime left (else refresh it)."""
    loaded = stored.data.get("session")
    return loaded == data.get("session") and stored.expires_at - now > ttl / 2


def _private_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy the handler may change: the stored session is shared with the memory tier."""
    inner = data.get("session")
    if isinstance(inner, dict) and any(isinstance(v, dict | list) for v in inner.values()):
        return orjson.loads(orjson.dumps(data))  # type: ignore[no-any-return]
    return {"created": data.get("created"), "session": dict(inner or {})}
