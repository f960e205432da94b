"""aiohttp-session 2.12.1 tests/test_http_exception.py, with TieredStorage (on a real
redis-server) where it used SimpleCookieStorage (`PORT:` marks each change)."""

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp_session import (
    get_session,
    session_middleware,
)

from .typedefs import UPSTREAM_WARNING, AiohttpClient, started, tiered_here

pytestmark = pytest.mark.filterwarnings(UPSTREAM_WARNING)  # PORT: aiohttp 3.14's warning


def create_app(*handlers: tuple[str, Handler]) -> web.Application:
    storage = tiered_here()  # PORT: TieredStorage, opened and closed with the app
    middleware = session_middleware(storage)
    app = web.Application(middlewares=[middleware])
    for url, handler in handlers:
        app.router.add_route("GET", url, handler)
    return started(app, storage)


async def test_exceptions(aiohttp_client: AiohttpClient) -> None:
    async def save(request: web.Request) -> web.StreamResponse:
        session = await get_session(request)
        session["message"] = "works"
        raise web.HTTPFound("/show")

    async def show(request: web.Request) -> web.StreamResponse:
        session = await get_session(request)
        message = session.get("message")
        return web.Response(text=str(message))

    client = await aiohttp_client(create_app(("/save", save), ("/show", show)))

    resp = await client.get("/save")
    assert resp.status == 200
    assert str(resp.url)[-5:] == "/show"
    text = await resp.text()
    assert text == "works"
