"""aiohttp-session 2.12.1 tests/test_cookie_storage.py (session and cookie behaviour every
storage shares), run against TieredStorage on a real redis-server instead of
SimpleCookieStorage. The cookie holds the session id and the data is in the store, so where a
test put data in the cookie or read it from there, it goes through Redis (`PORT:` marks each
change)."""

import time
from collections.abc import MutableMapping
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiohttp.typedefs import Handler
from aiohttp_session import (
    Session,
    get_session,
    session_middleware,
)

from .typedefs import (
    UPSTREAM_WARNING,
    AiohttpClient,
    load_here,
    started,
    store_here,
    stored_sessions,
    tiered_here,
)

pytestmark = pytest.mark.filterwarnings(UPSTREAM_WARNING)  # PORT: aiohttp 3.14's warning


def make_cookie(client: TestClient, data: dict[str, Any]) -> None:
    session_data = {"session": data, "created": int(time.time())}

    value = store_here(session_data)  # PORT: the data in Redis, its id in the cookie
    client.session.cookie_jar.update_cookies({"AIOHTTP_SESSION": value})


def create_app(handler: Handler) -> web.Application:
    storage = tiered_here()  # PORT: TieredStorage, opened and closed with the app
    middleware = session_middleware(storage)
    app = web.Application(middlewares=[middleware])
    app.router.add_route("GET", "/", handler)
    return started(app, storage)


async def test_create_new_session(aiohttp_client: AiohttpClient) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        session = await get_session(request)
        assert isinstance(session, Session)
        assert session.new
        assert not session._changed
        assert cast(MutableMapping[str, Any], {}) == session
        return web.Response(body=b"OK")

    client = await aiohttp_client(create_app(handler))
    resp = await client.get("/")
    assert resp.status == 200


async def test_load_existing_session(aiohttp_client: AiohttpClient) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        session = await get_session(request)
        assert isinstance(session, Session)
        assert not session.new
        assert not session._changed
        assert session.created is not None
        assert cast(MutableMapping[str, Any], {"a": 1, "b": 2}) == session
        return web.Response(body=b"OK")

    client = await aiohttp_client(create_app(handler))
    make_cookie(client, {"a": 1, "b": 2})
    resp = await client.get("/")
    assert resp.status == 200


async def test_change_session(aiohttp_client: AiohttpClient) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        session = await get_session(request)
        session["c"] = 3
        return web.Response(body=b"OK")

    client = await aiohttp_client(create_app(handler))
    make_cookie(client, {"a": 1, "b": 2})
    resp = await client.get("/")
    assert resp.status == 200

    morsel = resp.cookies["AIOHTTP_SESSION"]
    cookie_data = load_here(morsel.value)  # PORT: the data is in Redis
    assert "session" in cookie_data
    assert "a" in cookie_data["session"]
    assert "b" in cookie_data["session"]
    assert "c" in cookie_data["session"]
    assert "created" in cookie_data
    assert cookie_data["session"]["a"] == 1
    assert cookie_data["session"]["b"] == 2
    assert cookie_data["session"]["c"] == 3
    assert morsel["httponly"]
    assert morsel["path"] == "/"


async def test_clear_cookie_on_session_invalidation(
    aiohttp_client: AiohttpClient,
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        session = await get_session(request)
        session.invalidate()
        return web.Response(body=b"OK")

    client = await aiohttp_client(create_app(handler))
    make_cookie(client, {"a": 1, "b": 2})
    resp = await client.get("/")
    assert resp.status == 200
    # PORT: the cookie is deleted, as RedisStorage does (SimpleCookieStorage set it to `{}`),
    # and so is the stored session.
    morsel = resp.cookies["AIOHTTP_SESSION"]
    assert (morsel.value, morsel["max-age"], morsel["path"]) == ("", "0", "/")
    assert stored_sessions() == 0


async def test_dont_save_not_requested_session(aiohttp_client: AiohttpClient) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"OK")

    client = await aiohttp_client(create_app(handler))
    make_cookie(client, {"a": 1, "b": 2})
    resp = await client.get("/")
    assert resp.status == 200
    assert "AIOHTTP_SESSION" not in resp.cookies
