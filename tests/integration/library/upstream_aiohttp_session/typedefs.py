"""aiohttp-session 2.12.1 tests/typedefs.py, and the helpers every ported module shares: where
a test built a storage or read Redis directly, it calls these instead (our constructor, our key
and value format)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis as sync_redis
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis import asyncio as aioredis

from exporter.library.aiohttp_session import TieredStorage
from exporter.sessions.session import Session as StoredSession
from exporter.sessions.session import session_key
from exporter.store.contract import StoredValue, decode_value, encode_value

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]

# aiohttp-session 2.12 keys the request with strings; aiohttp 3.14 warns once per key.
UPSTREAM_WARNING = "ignore:It is recommended to use web.RequestKey"
PREFIX = "sme:"  # TieredStorage's default key prefix (the service's `redis_key_prefix`)
STORE_TTL = 3600.0


class Current:
    """The shared redis-server's URL for this test (set by conftest's autouse fixture), so that
    the SimpleCookieStorage tests keep their signatures (`create_app(handler)`, `make_cookie`)."""

    url = ""


def tiered(redis_url: str, **options: Any) -> TieredStorage:
    """The storage under test, on the shared redis-server; short timeouts as in our own tests."""
    return TieredStorage(redis_url, redis_timeout=0.25, redis_retry_interval=0.2, **options)


def started(app: web.Application, storage: TieredStorage) -> web.Application:
    """The one line every app gains: the storage opens and closes with the app."""
    app.cleanup_ctx.append(storage.cleanup_ctx)
    return app


def redis_key(session_id: str) -> str:
    return PREFIX + session_key(session_id)


def tiered_here(**options: Any) -> TieredStorage:
    return tiered(Current.url, **options)


def _encoded(data: dict[str, Any]) -> tuple[str, bytes]:
    """A new id, and `data` as our store holds it (what another instance would have written;
    upstream wrote `json.dumps(data)` under `AIOHTTP_SESSION_<key>`, or into the cookie)."""
    session_id = uuid.uuid4().hex
    now = time.time()
    document = StoredSession(session_id, data, now, now + STORE_TTL).to_document()
    value = StoredValue(document, version=time.time_ns(), expires_at=now + STORE_TTL)
    return session_id, encode_value(value)


def _decoded(session_id: str, raw: bytes | None) -> Any:
    value = None if raw is None else decode_value(raw)
    if value is None:
        return None
    return StoredSession.from_document(session_id, value.payload, value.version).data


async def store_raw(redis: aioredis.Redis, data: dict[str, Any]) -> str:
    """Write a session straight into Redis in our format; its id."""
    session_id, raw = _encoded(data)
    await redis.set(redis_key(session_id), raw, px=int(STORE_TTL * 1000))
    return session_id


async def load_raw(redis: aioredis.Redis, session_id: str) -> Any:
    """The session data stored under this id in our format, None when there is none."""
    raw = await redis.get(redis_key(session_id))
    return _decoded(session_id, raw.encode() if isinstance(raw, str) else raw)


def store_here(data: dict[str, Any]) -> str:
    """`store_raw` on this test's Redis, from synchronous code (upstream's `make_cookie`)."""
    session_id, raw = _encoded(data)
    with sync_redis.Redis.from_url(Current.url) as client:
        client.set(redis_key(session_id), raw, px=int(STORE_TTL * 1000))
    return session_id


def load_here(session_id: str) -> Any:
    """`load_raw` on this test's Redis, from synchronous code (where upstream decoded a cookie)."""
    with sync_redis.Redis.from_url(Current.url) as client:
        return _decoded(session_id, client.get(redis_key(session_id)))


def stored_sessions() -> int:
    """How many sessions this test's Redis holds (tombstones of deleted ones not counted)."""
    with sync_redis.Redis.from_url(Current.url) as client:
        keys = client.keys(PREFIX + "s:{*")
        return sum(_decoded("", client.get(key)) is not None for key in keys)
