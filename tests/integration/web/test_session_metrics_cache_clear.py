"""POST /api/session-metrics/cache/clear: admin token, what is cleared, metrics refreshed now."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.figma_double import DEFAULT_TOKEN, FigmaDouble
from tests.support.session_metrics import App, running_app

CLEAR = "/api/session-metrics/cache/clear"
ADMIN = "s3cret-admin-token-ä"


@pytest.fixture
async def figma() -> AsyncIterator[FigmaDouble]:
    double = await FigmaDouble().start()
    yield double
    await double.close()


async def fill(app: App, sessions: int) -> list[str]:
    ids = []
    for n in range(sessions):
        ids.append((await app.json("/api/sessions", 201, "POST", json={"data": {"n": n}}))["id"])
    return ids


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Basic YWRtaW46YWRtaW4="}, 401, "unauthorized"),
        ({"Authorization": "Bearer "}, 401, "unauthorized"),
        ({"Authorization": "Bearer wrong"}, 403, "forbidden"),
        (
            {"Authorization": "Bearer s3cret-admin-token"},
            403,
            "forbidden",
        ),  # a prefix is not enough
    ],
)
async def test_without_the_right_token_nothing_is_cleared(
    headers: dict[str, str], status: int, code: str
) -> None:
    async with running_app(admin_token=ADMIN) as app:
        await fill(app, 3)
        response = await app.client.post(CLEAR, headers=headers)
        body = await response.json()
        text = await response.text()
        assert app.sample("memory_tier_entries") == 3
        assert app.sample("cache_invalidations_total", {"reason": "clear"}) == 0
        assert not [e for e in app.runtime.events.recent(100) if e.type == "cache_cleared"]
    assert (response.status, body["error"]["code"]) == (status, code)
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "s3cret" not in text


async def test_auth_is_checked_before_the_scope() -> None:
    async with running_app(admin_token=ADMIN) as app:
        body = await app.json(f"{CLEAR}?scope=bogus", 401, "POST")
    assert body["error"]["code"] == "unauthorized"


async def test_with_the_token_the_memory_tier_empties_and_metrics_follow_at_once(
    redis_url: str,
) -> None:
    async with running_app(redis_url=redis_url, admin_token=ADMIN) as app:
        ids = await fill(app, 5)
        before = await app.json("/api/session-metrics/realtime")
        assert app.sample("memory_tier_entries") == 5
        body = await app.json(CLEAR, method="POST", headers={"Authorization": f"Bearer {ADMIN}"})
        # no waiting: the answer, the snapshot and the gauges already show the empty tier
        assert app.sample("memory_tier_entries") == 0
        assert app.sample("memory_tier_bytes") == 0
        assert app.sample("cache_invalidations_total", {"reason": "clear"}) == 5
        assert app.sample("events_total", {"type": "cache_cleared"}) == 1
        after = await app.json("/api/session-metrics/realtime")
        stats = await app.json("/api/session-metrics/cache-stats")
        assert app.runtime.sessions.store.status().memory_entries == 0
        # Redis still holds the sessions: the next read is a Redis hit that refills memory
        assert (await app.json(f"/api/sessions/{ids[0]}"))["data"] == {"n": 0}
        assert (
            app.sample(
                "cache_requests_total", {"manager": "session", "tier": "redis", "result": "hit"}
            )
            == 1
        )

    assert body["scope"] == "memory"
    assert body["cleared"] == {"memory_entries": 5}
    assert body["memory"]["entries"] == 0 and body["memory"]["bytes"] == 0
    assert (
        after["timestamp"] > before["timestamp"]
        and after["timestamp"] == body["snapshot_timestamp"]
    )
    assert after["store"]["memory_entries"] == 0
    cleared = [e for e in after["recent_events"] if e["type"] == "cache_cleared"]
    assert [e["details"] for e in cleared] == [{"scope": "memory", "memory_entries": 5}]
    assert stats["memory_tier"]["entries"] == 0 and stats["invalidations"]["clear"] == 5


async def test_open_when_no_token_is_configured_and_the_only_copies_stay() -> None:
    """Memory-only mode: the memory tier is the only copy of every session, so clearing the
    cache leaves them alone (and says so)."""
    async with running_app() as app:
        ids = await fill(app, 2)
        body = await app.json(CLEAR, method="POST")
        for sid in ids:
            await app.json(f"/api/sessions/{sid}")  # still 200
    assert body["cleared"] == {"memory_entries": 0}
    assert body["kept"] == {"sessions": 2}


async def test_scope_all_also_forgets_figma_responses(redis_url: str, figma: FigmaDouble) -> None:
    settings = {"redis_url": redis_url, "figma_api_url": figma.url, "figma_token": DEFAULT_TOKEN}
    async with running_app(**settings) as app:
        await fill(app, 2)
        await app.json("/api/figma/files/ABC")
        await app.json("/api/figma/files/ABC")
        assert figma.requests["files"] == 1  # the second came from the cache
        memory_only = await app.json(f"{CLEAR}?scope=memory", method="POST")
        await app.json("/api/figma/files/ABC")
        assert figma.requests["files"] == 1  # memory cleared, Redis still had the response
        everything = await app.json(f"{CLEAR}?scope=all", method="POST")
        await app.json("/api/figma/files/ABC")
        assert figma.requests["files"] == 2  # the Figma cache is gone: asked upstream again
        text = await (await app.client.get("/api/session-metrics/realtime")).text()

    # Two sessions, the document and ABC's version record (which keys the document to its
    # version); then the document and the record again, read back from Redis.
    assert memory_only["cleared"] == {"memory_entries": 4}
    assert everything["scope"] == "all"
    assert everything["cleared"] == {"figma_responses": 2, "memory_entries": 2}
    assert DEFAULT_TOKEN not in text
