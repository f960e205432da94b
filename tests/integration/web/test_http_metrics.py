"""Request metrics stay bounded whatever clients send."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from aiohttp.web_urldispatcher import MatchInfoError
from prometheus_client import CollectorRegistry, generate_latest

from exporter.core.settings import parse_settings
from exporter.web import create_app
from exporter.web.routes import ROUTES


async def test_unusual_methods_and_paths_share_bounded_series() -> None:
    registry = CollectorRegistry()
    async with TestClient(TestServer(create_app(parse_settings({}), registry=registry))) as http:
        # Methods the HTTP parser accepts but the API has no use for (unknown tokens get a 400
        # from the parser itself and never reach the app).
        for index, method in enumerate(("PROPFIND", "MKCOL", "LOCK", "PURGE", "REPORT")):
            response = await http.request(method, "/api/sessions")
            assert response.status == 405
            assert (await response.json())["error"]["code"] == "method_not_allowed"
            missing = await http.get(f"/no/such/path/{index}")
            assert missing.status == 404
    sample = registry.get_sample_value
    assert (
        sample(
            "session_exporter_http_requests_total",
            {"route": "unmatched", "method": "other", "status": "405"},
        )
        == 5
    )
    assert (
        sample(
            "session_exporter_http_requests_total",
            {"route": "unmatched", "method": "GET", "status": "404"},
        )
        == 5
    )
    exposition = generate_latest(registry).decode()
    assert "PROPFIND" not in exposition and "/no/such/path" not in exposition


PROBES = [
    ("GET", "/no/such/path"),
    ("PATCH", "/api/sessions/abc"),
    ("HEAD", "/api/sessions/abc"),  # its GET route has no HEAD
    ("POST", "/-/healthy"),
    ("GET", "/api/sessions/"),
    ("DELETE", "/metrics"),
    ("GET", "/api/figma/files/k/nodes/extra"),
    ("PUT", "/api/sessions"),
    ("GET", "/api//sessions"),
]


async def test_what_no_route_matches_is_answered_as_aiohttps_router_would() -> None:
    """The catch-all route (see exporter.web.handling) gives the status aiohttp's own router gives
    for the same request against the same routes, as JSON, counted as `unmatched`."""
    plain = web.Application()
    plain.add_routes([route.definition() for route in ROUTES])
    expected = {}
    for method, path in PROBES:
        match = await plain.router.resolve(make_mocked_request(method, path, app=plain))
        assert isinstance(match, MatchInfoError), (method, path)
        expected[method, path] = match.http_exception.status
    registry = CollectorRegistry()
    async with TestClient(TestServer(create_app(parse_settings({}), registry=registry))) as http:
        for method, path in PROBES:
            response = await http.request(method, path, allow_redirects=False)
            assert response.status == expected[method, path], (method, path)
            if method != "HEAD":
                assert response.content_type == "application/json"
                assert (await response.json())["error"]["code"] in (
                    "not_found",
                    "method_not_allowed",
                )
    unmatched = sum(
        sample.value
        for family in registry.collect()
        if family.name == "session_exporter_http_requests"
        for sample in family.samples
        if sample.labels.get("route") == "unmatched"
    )
    assert unmatched == len(PROBES)
