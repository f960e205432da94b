"""GET /api/openapi.json describes exactly the routes the app serves, and real answers fit it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.support.figma_double import DEFAULT_TOKEN, FigmaDouble
from tests.support.session_metrics import App, SseReader, running_app

BASE = "/api/session-metrics"
METHODS = {"get", "put", "post", "delete", "patch"}
UNMATCHED_CANONICAL = "/{unmatched_path}"


@pytest.fixture
async def figma() -> AsyncIterator[FigmaDouble]:
    double = await FigmaDouble().start()
    yield double
    await double.close()


def served_routes(app: App) -> set[tuple[str, str]]:
    routes = set()
    for route in app.app.router.routes():
        if route.method == "HEAD":  # aiohttp adds HEAD beside GET; not part of the contract
            continue
        resource = route.resource
        assert resource is not None
        if resource.canonical == UNMATCHED_CANONICAL:  # answers 404/405 for the rest
            continue
        routes.add((resource.canonical, route.method.lower()))
    return routes


def described_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


def validator(doc: dict[str, Any], name: str) -> Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return Draft202012Validator(schema)


def check(doc: dict[str, Any], name: str, body: Any) -> None:
    errors = sorted(validator(doc, name).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, f"{name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


async def test_every_served_route_is_described_and_nothing_else(redis_url: str) -> None:
    async with running_app(redis_url=redis_url) as app:
        doc = await app.json("/api/openapi.json")
        served = served_routes(app)
    assert doc["openapi"].startswith("3.")
    assert served == described_routes(doc), {
        "served, not described": served - described_routes(doc),
        "described, not served": described_routes(doc) - served,
    }
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                assert op["summary"] and op["responses"], (path, method)
                if method in ("post", "put") and path != f"{BASE}/cache/clear":
                    assert "requestBody" in op, (path, method)


async def test_component_schemas_are_valid_json_schema() -> None:
    async with running_app() as app:
        doc = await app.json("/api/openapi.json")
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        assert name


async def test_real_answers_fit_their_schemas(redis_url: str, figma: FigmaDouble) -> None:
    settings = {"redis_url": redis_url, "figma_api_url": figma.url, "figma_token": DEFAULT_TOKEN}
    async with running_app(**settings) as app:
        doc = await app.json("/api/openapi.json")
        created = await app.json(
            "/api/sessions", 201, "POST", json={"data": {"a": 1}, "ttl_seconds": 60}
        )
        check(doc, "Session", created)
        check(doc, "Session", await app.json(f"/api/sessions/{created['id']}"))
        check(doc, "Error", await app.json("/api/sessions/nope", 404))
        check(doc, "Error", await app.json("/api/sessions", 400, "POST", data=b"{"))
        await app.json("/api/figma/files/ABC", 200)
        await app.json("/api/figma/files/ABC", 200)  # cached
        shot = await app.json(
            "/api/figma/screenshots", 200, "POST", json={"file_key": "ABC", "node_id": "1:2"}
        )
        check(doc, "Screenshot", shot)
        app.runtime.sessions.instrumentation.record("get", 0.2, context="slow")
        for path, name in [
            ("performance", "Performance"),
            ("realtime", "Realtime"),
            ("persistence", "Persistence"),
            ("health-check?refresh=true", "HealthCheck"),
            ("cache-stats", "CacheStats"),
        ]:
            check(doc, name, await app.json(f"{BASE}/{path}"))
        check(doc, "CacheCleared", await app.json(f"{BASE}/cache/clear?scope=all", method="POST"))
        response = await app.client.get(f"{BASE}/stream", headers={"Last-Event-ID": "0"})
        reader = SseReader(response)
        seen: dict[str, Any] = {}
        while len(seen) < 3:
            message = await reader.next()
            seen[message.event] = message.data
        response.close()
    check(doc, "HealthCheck", seen["health"])
    check(doc, "Realtime", seen["metrics"])
    check(doc, "Event", seen["event"])
