"""Request metrics stay bounded whatever clients send."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest

from exporter.config import parse_settings
from exporter.web import create_app


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
