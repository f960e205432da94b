"""What a route's declaration says is what the app enforces: a route declared `admin` is served
behind the admin token (and documented with its 401 and 403), a route declared `any_host` skips
the `Host` check that every other route gets, and a first try may not skip the admin check."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from exporter.core.metrics import Metrics
from exporter.core.settings import parse_settings
from exporter.web import openapi
from exporter.web.allowed_hosts import AllowedHosts
from exporter.web.handling import instrumented_routes
from exporter.web.keys import SETTINGS
from exporter.web.operation import Operation, Route, answer

TOKEN = "route-table-admin-token"
Client = TestClient[web.Request, web.Application]


async def _done(request: web.Request) -> web.Response:
    return web.json_response({"done": request.path})


def _route(path: str, *, admin: bool = False, any_host: bool = False) -> Route:
    operation = Operation("Do it", "operations", {200: answer("done")}, admin=admin)
    return Route("POST" if admin else "GET", path, _done, operation, any_host=any_host)


ROUTES = (
    _route("/admin", admin=True),
    _route("/open"),
    _route("/probe", any_host=True),
)


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    app = web.Application()
    app[SETTINGS] = parse_settings({"admin_token": TOKEN})
    hosts = AllowedHosts("127.0.0.1", ())
    app.add_routes(instrumented_routes(ROUTES, Metrics(CollectorRegistry()), None, hosts))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_a_route_declared_admin_needs_the_token(client: Client) -> None:
    missing = await client.post("/admin")
    assert missing.status == 401
    assert (await missing.json())["error"]["code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = await client.post("/admin", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 403
    given = await client.post("/admin", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (given.status, await given.json()) == (200, {"done": "/admin"})
    assert (await client.get("/open")).status == 200  # no token asked of the others
    documented = openapi.document(ROUTES)["paths"]["/admin"]["post"]
    assert set(documented["responses"]) == {"200", "401", "403"}
    assert documented["security"] == [{"adminToken": []}, {}]


async def test_only_routes_declared_any_host_answer_an_unknown_host(client: Client) -> None:
    foreign = {"Host": "attacker.example"}
    assert (await client.get("/probe", headers=foreign)).status == 200
    refused = await client.get("/open", headers=foreign)
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "host_not_allowed"
    assert "Any route but /probe answers 403" in openapi.document(ROUTES)["info"]["description"]


def test_a_first_try_cannot_come_before_the_admin_check() -> None:
    operation = Operation("Clear", "operations", {200: answer("cleared")}, admin=True)
    with pytest.raises(ValueError, match="admin check"):
        Route("POST", "/clear", _done, operation, answer_now=lambda request: None)
