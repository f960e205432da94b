"""aiohttp-session 2.12.1 tests/test_path_domain.py, run against TieredStorage on a real
redis-server instead of SimpleCookieStorage: the cookie holds the session id, the data is read
from Redis (`PORT:` marks each change)."""

import time
from http import cookies
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiohttp.typedefs import Handler
from aiohttp_session import get_session, session_middleware

from .typedefs import UPSTREAM_WARNING, AiohttpClient, load_here, started, store_here, tiered_here

pytestmark = pytest.mark.filterwarnings(UPSTREAM_WARNING)  # PORT: aiohttp 3.14's warning


def make_cookie(
    client: TestClient,
    data: Any,
    path: str | None = None,
    domain: str | None = None,
) -> None:
    session_data = {"session": data, "created": int(time.time())}
    C = cookies.SimpleCookie()
    value = store_here(session_data)  # PORT: the data in Redis, its id in the cookie
    C["AIOHTTP_SESSION"] = value
    C["AIOHTTP_SESSION"]["path"] = path
    C["AIOHTTP_SESSION"]["domain"] = domain
    client.session.cookie_jar.update_cookies(C)


def create_app(
    handler: Handler, path: str | None = None, domain: str | None = None
) -> web.Application:
    # PORT: TieredStorage, opened and closed with the app
    storage = tiered_here(max_age=10, path="/anotherpath", domain="127.0.0.1")
    middleware = session_middleware(storage)
    app = web.Application(middlewares=[middleware])
    app.router.add_route("GET", "/", handler)
    app.router.add_route("GET", "/anotherpath", handler)
    return started(app, storage)


async def test_with_same_path_domain(aiohttp_client: AiohttpClient) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        session = await get_session(request)
        session["c"] = 3
        return web.Response(body=b"OK")

    client = await aiohttp_client(create_app(handler))
    make_cookie(client, {"a": 1, "b": 2}, path="/anotherpath", domain="127.0.0.1")
    resp = await client.get("/anotherpath")
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
    assert morsel["path"] == "/anotherpath"
    assert morsel["domain"] == "127.0.0.1"


async def test_with_different_path(aiohttp_client: AiohttpClient) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        session = await get_session(request)
        session["c"] = 3
        return web.Response(body=b"OK")

    client = await aiohttp_client(create_app(handler))
    make_cookie(client, {"a": 1, "b": 2}, path="/NotTheSame", domain="127.0.0.1")
    resp = await client.get("/anotherpath")
    assert resp.status == 200
    morsel = resp.cookies["AIOHTTP_SESSION"]
    cookie_data = load_here(morsel.value)  # PORT: the data is in Redis
    assert "session" in cookie_data
    assert "a" not in cookie_data["session"]
    assert "b" not in cookie_data["session"]
    assert "c" in cookie_data["session"]
    assert "created" in cookie_data
    assert cookie_data["session"]["c"] == 3
    assert morsel["httponly"]
    assert morsel["path"] == "/anotherpath"
    assert morsel["domain"] == "127.0.0.1"


async def test_with_different_domain(aiohttp_client: AiohttpClient) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        session = await get_session(request)
        session["c"] = 3
        return web.Response(body=b"OK")

    client = await aiohttp_client(create_app(handler))
    make_cookie(client, {"a": 1, "b": 2}, path="/anotherpath", domain="localhost")
    resp = await client.get("/anotherpath")
    assert resp.status == 200
    morsel = resp.cookies["AIOHTTP_SESSION"]
    cookie_data = load_here(morsel.value)  # PORT: the data is in Redis
    assert "session" in cookie_data
    assert "a" not in cookie_data["session"]
    assert "b" not in cookie_data["session"]
    assert "c" in cookie_data["session"]
    assert "created" in cookie_data
    assert cookie_data["session"]["c"] == 3
    assert morsel["httponly"]
    assert morsel["path"] == "/anotherpath"
    assert morsel["domain"] == "127.0.0.1"


async def test_invalidate_with_same_path_domain(aiohttp_client: AiohttpClient) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        session = await get_session(request)
        session.invalidate()

        return web.Response(body=b"OK")

    client = await aiohttp_client(create_app(handler))
    make_cookie(client, {"a": 1, "b": 2}, path="/anotherpath", domain="127.0.0.1")
    resp = await client.get("/anotherpath")
    assert resp.status == 200
    morsel = resp.cookies["AIOHTTP_SESSION"]
    cookie_data = load_here(morsel.value)  # PORT: the data is in Redis
    assert cookie_data is None  # PORT: the session is deleted (SimpleCookieStorage wrote `{}`)
    assert morsel.value == ""  # PORT: and the cookie too
    # PORT: no `httponly` on a deletion (aiohttp-session's `save_cookie` deletes the cookie with
    # `del_cookie`, for RedisStorage as for us); the path and domain still match.
    assert morsel["path"] == "/anotherpath"
    assert morsel["domain"] == "127.0.0.1"
