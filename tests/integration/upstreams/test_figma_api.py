"""The /api/figma HTTP surface of the whole app, against the Figma double and a real MCP server:
the documented shapes (README, /api/openapi.json), 400s for bad input, 502/503/504 naming the
upstream, and no token anywhere."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from exporter.core.settings import parse_settings
from exporter.web import create_app
from tests.support.figma_double import DEFAULT_TOKEN, PNG_BYTES, Fault, FigmaDouble
from tests.support.mcp_server import SCREENSHOT_BYTES, McpServerProcess

# The app's test client and the registry its metrics are read from.
Api = tuple[TestClient[web.Request, web.Application], CollectorRegistry]

SCREENSHOT_FIELDS = {
    "node_id",
    "source",
    "content_type",
    "size_bytes",
    "sha256",
    "cached",
    "duration_ms",
}


@asynccontextmanager
async def app_client(**settings: Any) -> AsyncIterator[Api]:
    registry = CollectorRegistry()
    app = create_app(parse_settings({"probe_interval": 3600, **settings}), registry=registry)
    async with TestClient(TestServer(app)) as client:
        yield client, registry


@pytest_asyncio.fixture
async def api(double: FigmaDouble, mcp_server: McpServerProcess) -> AsyncIterator[Api]:
    double.reset()
    mcp_server.start()
    settings = {
        "figma_api_url": double.url,
        "figma_token": DEFAULT_TOKEN,
        "mcp_url": mcp_server.url,
    }
    # 1.5 s: well under the double's 2 s "slow" fault, well over a realistic document's serving
    # time on a busy machine (0.5 s was not: a healthy call answered 504 under load).
    async with app_client(figma_timeout=1.5, **settings) as pair:
        yield pair


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(f"session_exporter_{name}", labels)
    assert value is not None, f"missing series session_exporter_{name}{labels}"
    return value


def data_calls(double: FigmaDouble) -> int:
    """Requests other than the availability probe's `/v1/me`."""
    return sum(n for endpoint, n in double.requests.items() if endpoint != "me")


async def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    error: dict[str, Any] = body["error"]
    return error


async def test_file_and_nodes_through_the_cache(api: Api, double: FigmaDouble) -> None:
    client, registry = api
    first = await client.get("/api/figma/files/FILE1", params={"depth": "2"})
    assert first.status == 200
    document = await first.json()
    assert document["name"] == "Design FILE1" and document["document"]["type"] == "DOCUMENT"
    again = await client.get("/api/figma/files/FILE1", params={"depth": "2"})
    assert await again.json() == document
    nodes = await client.get("/api/figma/files/FILE1/nodes", params={"ids": "1:2,1:3"})
    assert nodes.status == 200
    assert set((await nodes.json())["nodes"]) == {"1:2", "1:3"}
    assert double.requests["files"] == 1 and double.requests["nodes"] == 1
    assert (
        sample(registry, "cache_requests_total", manager="figma", tier="memory", result="hit") == 1
    )
    route = {"route": "/api/figma/files/{file_key}", "method": "GET", "status": "200"}
    assert sample(registry, "http_requests_total", **route) == 2


async def test_ten_concurrent_identical_requests_make_one_upstream_call(
    api: Api, double: FigmaDouble
) -> None:
    client, _ = api
    double.fail(
        "nodes", Fault("slow", delay=0.2)
    )  # the first call is still in flight when the rest come
    responses = await asyncio.gather(
        *(client.get("/api/figma/files/FILE1/nodes", params={"ids": "1:2"}) for _ in range(10))
    )
    assert [r.status for r in responses] == [200] * 10
    bodies = [await r.json() for r in responses]
    assert all(body == bodies[0] for body in bodies)
    assert double.requests["nodes"] == 1


async def test_session_attribution(api: Api, double: FigmaDouble) -> None:
    client, _ = api
    created = await client.post("/api/sessions", json={"data": {"user": "ada"}})
    session_id = (await created.json())["id"]
    ok = await client.get("/api/figma/files/FILE1", params={"session": session_id})
    assert ok.status == 200
    shot = await client.post(
        "/api/figma/screenshots",
        json={"file_key": "FILE1", "node_id": "1:2", "session": session_id},
    )
    assert shot.status == 200
    unknown = await client.get("/api/figma/files/FILE1", params={"session": "nobody"})
    assert (await error_of(unknown, 404))["code"] == "not_found"
    assert double.requests["files"] == 1


async def test_screenshot_json_and_download(api: Api, double: FigmaDouble) -> None:
    client, registry = api
    body = {"file_key": "FILE1", "node_id": "1:2", "source": "api", "format": "png", "scale": 1}
    response = await client.post("/api/figma/screenshots", json=body)
    assert response.status == 200
    shot = await response.json()
    assert set(shot) == SCREENSHOT_FIELDS
    assert (
        shot["node_id"] == "1:2" and shot["source"] == "api" and shot["content_type"] == "image/png"
    )
    assert shot["size_bytes"] == PNG_BYTES and len(shot["sha256"]) == 64 and shot["cached"] is False
    assert shot["duration_ms"] >= 0

    download = await client.post("/api/figma/screenshots", params={"download": "1"}, json=body)
    assert download.status == 200 and download.content_type == "image/png"
    data = await download.read()
    assert len(data) == PNG_BYTES and data[:4] == b"\x89PNG"
    assert download.headers["X-Screenshot-Sha256"] == shot["sha256"]
    assert download.headers["X-Screenshot-Cached"] == "true"

    svg = await client.post(
        "/api/figma/screenshots?download=1", json={**body, "format": "svg", "scale": 2}
    )
    assert svg.content_type == "image/svg+xml"
    mcp = await client.post("/api/figma/screenshots", json={**body, "source": "mcp"})
    assert mcp.status == 200
    assert (await mcp.json())["size_bytes"] == SCREENSHOT_BYTES
    assert sample(registry, "screenshot_size_bytes_sum", source="api") == double.bytes_served
    assert sample(registry, "screenshot_size_bytes_sum", source="mcp") == SCREENSHOT_BYTES
    assert sample(registry, "screenshots_total", source="api", outcome="cached") == 1
    assert (
        sample(
            registry,
            "upstream_requests_total",
            service="mcp_server",
            endpoint="get_screenshot",
            status="2xx",
        )
        == 1
    )


@pytest.mark.parametrize(
    "path, params",
    [
        ("/api/figma/files/bad-key!", {}),
        ("/api/figma/files/FILE1", {"depth": "0"}),
        ("/api/figma/files/FILE1", {"depth": "deep"}),
        ("/api/figma/files/FILE1", {"ids": "1:2,nope"}),
        ("/api/figma/files/FILE1/nodes", {}),
        ("/api/figma/files/FILE1/nodes", {"ids": ""}),
        ("/api/figma/files/FILE1/nodes", {"ids": "1:2;x"}),
        ("/api/figma/files/FILE1/nodes", {"ids": ",".join(["1:2"] * 101)}),
    ],
)
async def test_bad_file_and_node_requests_are_400(
    api: Api,
    double: FigmaDouble,
    path: str,
    params: dict[str, str],
) -> None:
    client, _ = api
    error = await error_of(await client.get(path, params=params), 400)
    assert error["code"] == "invalid_request"
    assert data_calls(double) == 0  # nothing reached Figma


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"node_id": "1:2"}, "file_key"),
        ({"file_key": "FILE1"}, "node_id"),
        ({"file_key": "FILE1", "node_id": "x"}, "node id"),
        ({"file_key": "a/b", "node_id": "1:2"}, "file_key"),
        ({"file_key": "FILE1", "node_id": "1:2", "source": "desktop"}, "source"),
        ({"file_key": "FILE1", "node_id": "1:2", "format": "gif"}, "format"),
        ({"file_key": "FILE1", "node_id": "1:2", "scale": 0}, "scale"),
        ({"file_key": "FILE1", "node_id": "1:2", "scale": 4.5}, "scale"),
        ({"file_key": "FILE1", "node_id": "1:2", "scale": "2"}, "scale"),
        ({"file_key": "FILE1", "node_id": "1:2", "source": "mcp", "format": "pdf"}, "PNG only"),
        ({"file_key": 7, "node_id": "1:2"}, "file_key"),
    ],
)
async def test_bad_screenshot_requests_are_400(
    api: Api,
    double: FigmaDouble,
    body: dict[str, Any],
    fragment: str,
) -> None:
    client, registry = api
    error = await error_of(await client.post("/api/figma/screenshots", json=body), 400)
    assert fragment in error["message"]
    assert data_calls(double) == 0
    assert sample(registry, "screenshots_total", source="api", outcome="error") == 0


async def test_malformed_bodies_and_flags_are_400(api: Api) -> None:
    client, _ = api
    assert (await error_of(await client.post("/api/figma/screenshots", data=b"{"), 400))[
        "code"
    ] == "malformed_json"
    assert (await error_of(await client.post("/api/figma/screenshots", json=[1]), 400))[
        "code"
    ] == "invalid_body"
    flag = await client.post(
        "/api/figma/screenshots?download=maybe", json={"file_key": "F", "node_id": "1:2"}
    )
    assert "download" in (await error_of(flag, 400))["message"]


async def test_upstream_failures_map_to_502_503_504(api: Api, double: FigmaDouble) -> None:
    client, registry = api
    double.fail("files", Fault("500"), times=None)
    bad_gateway = await error_of(await client.get("/api/figma/files/FILE1"), 502)
    assert bad_gateway["upstream"] == "figma_api"

    double.fail("nodes", Fault("slow"), times=None)
    timeout = await error_of(await client.get("/api/figma/files/FILE1/nodes?ids=1:2"), 504)
    assert timeout["upstream"] == "figma_api" and timeout["code"] == "upstream_timeout"

    double.reset()
    missing = await error_of(await client.get("/api/figma/files/missingFILE"), 404)
    assert missing["upstream"] == "figma_api"

    # Last: the 429's Retry-After locks files, nodes and images out for 120 s.
    double.fail("images", Fault("429", retry_after=120))
    limited = await client.post(
        "/api/figma/screenshots", json={"file_key": "FILE1", "node_id": "1:2"}
    )
    assert (await error_of(limited, 503))["upstream"] == "figma_api"
    assert limited.headers["Retry-After"] == "120"

    for status in ("5xx", "timeout", "429", "4xx"):
        endpoint = {"5xx": "files", "timeout": "nodes", "429": "images", "4xx": "files"}[status]
        assert (
            sample(
                registry,
                "upstream_requests_total",
                service="figma_api",
                endpoint=endpoint,
                status=status,
            )
            >= 1
        )
    assert (
        sample(
            registry, "operation_errors_total", manager="figma", operation="nodes", error="timeout"
        )
        == 1
    )


async def test_not_configured_upstreams_are_503() -> None:
    async with app_client() as (client, registry):
        error = await error_of(await client.get("/api/figma/files/FILE1"), 503)
        assert error["upstream"] == "figma_api" and "not configured" in error["message"]
        shot = await client.post(
            "/api/figma/screenshots", json={"file_key": "F", "node_id": "1:2", "source": "mcp"}
        )
        assert (await error_of(shot, 503))["upstream"] == "mcp_server"
        for service in ("figma_api", "mcp_server"):
            assert sample(registry, "upstream_enabled", service=service) == 0
            # A disabled service exports no upstream_up series at all (not a 0: it is not down).
            assert (
                registry.get_sample_value("session_exporter_upstream_up", {"service": service})
                is None
            )


async def test_the_token_never_leaks(
    double: FigmaDouble, mcp_server: McpServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    double.reset()
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    settings = {
        "figma_api_url": double.url,
        "figma_token": DEFAULT_TOKEN,
        "mcp_url": mcp_server.url,
    }
    async with app_client(figma_timeout=0.3, log_level="debug", **settings) as (client, _):
        double.fail("me", Fault("403"))
        double.fail("nodes", Fault("slow"), times=None)
        double.fail("images", Fault("500"), times=None)
        calls = [
            client.get("/api/figma/files/FILE1"),
            client.get("/api/figma/files/missingFILE"),
            client.get("/api/figma/files/FILE1/nodes?ids=1:2"),
            client.post("/api/figma/screenshots", json={"file_key": "FILE1", "node_id": "1:2"}),
            client.get("/api/figma/files/bad!key"),
            client.get("/api/session-metrics/health-check?refresh=true"),
            client.get("/api/session-metrics/persistence"),
            client.get("/api/session-metrics/performance"),
            client.get("/metrics"),
            client.get("/metrics", headers={"Accept": "application/openmetrics-text"}),
            client.get("/"),
        ]
        for call in calls:
            response = await call
            seen.append(await response.text())
            seen.append(repr(dict(response.headers)))
    assert double.tokens_seen and all(token == DEFAULT_TOKEN for token in double.tokens_seen)
    assert any("Figma" in text for text in seen)  # the calls did reach the Figma paths
    for text in seen:
        assert DEFAULT_TOKEN not in text
    logged = "\n".join(
        record.getMessage() + repr(record.args) + str(record.exc_info) for record in caplog.records
    )
    # The 403 was seen (in the refreshed health report, or logged when a start-up probe delayed
    # by load met it first), and the outage was logged. Logged is its first cause: the 403, or, on
    # a starved machine, the start-up probe's 0.3 s timeout before it (the state then stays down,
    # and a state that does not change is not logged again).
    assert any("Figma API me rejected the token (403)" in text for text in [*seen, logged])
    assert "figma_api is down: Figma API me" in logged
    assert (
        "GET /v1/files/missingFILE" in logged
    )  # and so were the requests (the double's access log)
    assert DEFAULT_TOKEN not in logged
    assert DEFAULT_TOKEN not in caplog.text


async def test_cached_screenshots_never_evict_sessions_in_memory_only_mode(
    double: FigmaDouble,
) -> None:
    """Memory only, a memory eviction loses the session: images get their own share of the tier."""
    double.reset()
    double.image_size = 300_000
    settings = {
        "figma_api_url": double.url,
        "figma_token": DEFAULT_TOKEN,
        "memory_max_bytes": 2_000_000,
        "figma_cache_max_bytes": 700_000,
    }
    async with app_client(**settings) as (client, registry):
        ids = []
        for n in range(20):
            created = await client.post("/api/sessions", json={"data": {"n": n}})
            ids.append((await created.json())["id"])
        for n in range(10):  # 3 MB of images through a 2 MB tier
            body = {"file_key": "FILE1", "node_id": f"1:{n}", "source": "api"}
            assert (await client.post("/api/figma/screenshots", json=body)).status == 200
        for sid in ids:
            assert (await client.get(f"/api/sessions/{sid}")).status == 200
        assert sample(registry, "cache_evictions_total", tier="memory") >= 8
        assert sample(registry, "memory_tier_bytes") <= 2_000_000
        shown = await (await client.get("/api/session-metrics/persistence")).json()
        assert shown["sessions"]["in_memory_here"] == 20
        assert 0 < shown["sessions"]["figma_cache_bytes_here"] <= 700_000
        again = {"file_key": "FILE1", "node_id": "1:9", "source": "api"}
        assert (await (await client.post("/api/figma/screenshots", json=again)).json())["cached"]
