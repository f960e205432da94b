"""The sessions HTTP API as a client sees it: round trip, errors, size limit, expiry, metrics
read back from the app's registry, and an exposition that promtool accepts."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from exporter.core.settings import parse_settings
from exporter.web import create_app
from tests.support.redis_server import missing_dependency
from tests.support.sessions import wait_for

# The app's test client and the registry its metrics are read from.
Api = tuple[TestClient[web.Request, web.Application], CollectorRegistry]

ROUTE = "/api/sessions/{id}"


@asynccontextmanager
async def api(**settings: Any) -> AsyncIterator[Api]:
    registry = CollectorRegistry()
    app = create_app(parse_settings(settings), registry=registry)
    async with TestClient(TestServer(app)) as client:
        yield client, registry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(f"session_exporter_{name}", labels)
    assert value is not None, f"missing series session_exporter_{name}{labels}"
    return value


def parse_time(text: str) -> float:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture(params=["memory", "redis"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    settings: dict[str, Any] = {"max_body_bytes": 2048, "session_ttl": 120}
    if request.param == "redis":
        settings["redis_url"] = request.getfixturevalue("redis_url")
    async with api(**settings) as pair:
        yield pair


async def test_round_trip(client: Api) -> None:
    http, _ = client
    created = await http.post(
        "/api/sessions", json={"data": {"user": "ada", "n": [1, 2]}, "ttl_seconds": 60}
    )
    assert created.status == 201
    body = await created.json()
    assert set(body) == {"id", "data", "created_at", "expires_at"}
    assert body["data"] == {"user": "ada", "n": [1, 2]}
    assert parse_time(body["expires_at"]) - parse_time(body["created_at"]) == pytest.approx(
        60, abs=0.01
    )
    sid = body["id"]
    assert len(sid) >= 32

    fetched = await http.get(f"/api/sessions/{sid}")
    assert fetched.status == 200 and fetched.content_type == "application/json"
    assert await fetched.json() == body

    replaced = await http.put(f"/api/sessions/{sid}", json={"data": {"user": "grace"}})
    assert replaced.status == 200
    assert (await replaced.json())["data"] == {"user": "grace"}
    assert (await (await http.get(f"/api/sessions/{sid}")).json())["data"] == {"user": "grace"}

    assert (await http.delete(f"/api/sessions/{sid}")).status == 204
    for method in ("get", "delete"):
        gone = await getattr(http, method)(f"/api/sessions/{sid}")
        assert gone.status == 404
        assert (await gone.json())["error"]["code"] == "not_found"
    assert (await http.put(f"/api/sessions/{sid}", json={"data": {}})).status == 404


async def test_default_ttl_and_missing_data(client: Api) -> None:
    http, _ = client
    body = await (await http.post("/api/sessions", json={})).json()
    assert body["data"] == {}
    assert parse_time(body["expires_at"]) - parse_time(body["created_at"]) == pytest.approx(
        120, abs=0.01
    )


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"[1, 2]", "invalid_body"),
        (b'"text"', "invalid_body"),
        (b"", "invalid_body"),
        (b'{"data": [1]}', "invalid_data"),
        (b'{"data": "x"}', "invalid_data"),
        (b'{"data": null}', "invalid_data"),
        (b'{"data": {}, "ttl_seconds": 0}', "invalid_ttl"),
        (b'{"data": {}, "ttl_seconds": -5}', "invalid_ttl"),
        (b'{"data": {}, "ttl_seconds": "60"}', "invalid_ttl"),
        (b'{"data": {}, "ttl_seconds": true}', "invalid_ttl"),
        (b'{"data": {}, "ttl_seconds": 1e12}', "invalid_ttl"),
    ],
)
async def test_bad_input_is_a_clear_400_and_changes_nothing(
    client: Api,
    payload: bytes,
    code: str,
) -> None:
    http, registry = client
    response = await http.post(
        "/api/sessions", data=payload, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == code and error["message"]
    assert sample(registry, "sessions_created_total") == 0
    assert sample(registry, "memory_tier_entries") == 0


async def test_put_needs_an_object_data(client: Api) -> None:
    http, _ = client
    sid = (await (await http.post("/api/sessions", json={"data": {"v": 1}})).json())["id"]
    for body in ({}, {"data": 3}, {"data": {}, "ttl_seconds": -1}):
        response = await http.put(f"/api/sessions/{sid}", json=body)
        assert response.status == 400
    assert (await (await http.get(f"/api/sessions/{sid}")).json())["data"] == {"v": 1}


async def test_body_over_the_limit_is_413(client: Api) -> None:
    http, registry = client
    big = {"data": {"blob": "x" * 4096}}
    response = await http.post("/api/sessions", json=big)
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "body_too_large"
    sid = (await (await http.post("/api/sessions", json={"data": {}})).json())["id"]
    assert (await http.put(f"/api/sessions/{sid}", json=big)).status == 413
    assert sample(registry, "sessions_created_total") == 1


async def test_unknown_and_malformed_ids_are_404(client: Api) -> None:
    http, _ = client
    for sid in ("doesnotexist", "a%7Db", "x" * 300):
        response = await http.get(f"/api/sessions/{sid}")
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"


async def test_short_ttl_expires(client: Api) -> None:
    http, registry = client
    created = asyncio.get_running_loop().time()
    sid = (await (await http.post("/api/sessions", json={"data": {}, "ttl_seconds": 1.0})).json())[
        "id"
    ]
    if asyncio.get_running_loop().time() - created < 0.8:  # else a busy machine outran the TTL
        assert (await http.get(f"/api/sessions/{sid}")).status == 200
    await asyncio.sleep(max(0.0, created + 1.2 - asyncio.get_running_loop().time()))
    assert (await http.get(f"/api/sessions/{sid}")).status == 404
    assert (await http.put(f"/api/sessions/{sid}", json={"data": {}})).status == 404
    # Counted once: by the read that claimed the expiry, or (if that claim timed out on a busy
    # machine) by the index's next sweep.
    await wait_for(lambda: sample(registry, "sessions_expired_total") == 1, 5)
    assert sample(registry, "sessions_active") == 0


async def test_metric_values_after_known_requests(client: Api) -> None:
    http, registry = client
    ids = [
        (await (await http.post("/api/sessions", json={"data": {"n": n}})).json())["id"]
        for n in range(3)
    ]
    for _ in range(4):
        assert (await http.get(f"/api/sessions/{ids[0]}")).status == 200
    await http.get("/api/sessions/unknown")
    await http.put(f"/api/sessions/{ids[1]}", json={"data": {"n": 10}})
    await http.delete(f"/api/sessions/{ids[2]}")

    assert sample(registry, "sessions_created_total") == 3
    assert sample(registry, "sessions_retrieved_total") == 4
    assert sample(registry, "sessions_updated_total") == 1
    assert sample(registry, "sessions_deleted_total") == 1
    assert sample(registry, "sessions_active") == 2
    get = {"manager": "session", "operation": "get"}
    assert sample(registry, "operation_duration_seconds_count", **get) == 5
    assert sample(registry, "operation_errors_total", **get, error="not_found") == 1
    assert (
        sample(registry, "cache_requests_total", manager="session", tier="memory", result="hit")
        == 5
    )
    assert sample(registry, "http_requests_total", route=ROUTE, method="GET", status="200") == 4
    assert sample(registry, "http_requests_total", route=ROUTE, method="GET", status="404") == 1
    assert (
        sample(registry, "http_requests_total", route="/api/sessions", method="POST", status="201")
        == 3
    )
    assert sample(registry, "http_request_duration_seconds_count", route=ROUTE, method="GET") == 5


async def test_exposition_passes_promtool_and_has_no_session_ids(client: Api) -> None:
    if shutil.which("promtool") is None:
        missing_dependency("promtool", "install the Debian package prometheus")
    http, _ = client
    sid = (await (await http.post("/api/sessions", json={"data": {}})).json())["id"]
    await http.get(f"/api/sessions/{sid}")
    text = await (await http.get("/metrics")).text()
    assert sid not in text
    assert "session_exporter_sessions_created_total 1.0" in text
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
