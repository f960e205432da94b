"""What an operator sees of the Figma cache's revalidation over HTTP: the counts and computed
recommendations in /api/session-metrics/cache-stats, and a quota hold in the health check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.figma_double import DEFAULT_TOKEN, Fault, FigmaDouble
from tests.support.session_metrics import running_app, wait_for

BASE = "/api/session-metrics"
TTL = 0.2
PAST_TTL = 0.3


@pytest.fixture
async def figma() -> AsyncIterator[FigmaDouble]:
    double = await FigmaDouble().start()
    yield double
    await double.close()


def figma_settings(double: FigmaDouble, **values: Any) -> dict[str, Any]:
    return {"figma_api_url": double.url, "figma_token": DEFAULT_TOKEN, **values}


async def test_cache_stats_show_what_revalidation_saved(figma: FigmaDouble) -> None:
    settings = figma_settings(figma, figma_cache_ttl=TTL, figma_cache_stale_seconds=0)
    async with running_app(**settings) as app:
        await app.json("/api/figma/files/ABC")
        for _ in range(2):
            await asyncio.sleep(PAST_TTL)
            await app.json("/api/figma/files/ABC")
        body = await app.json(f"{BASE}/cache-stats")

    assert figma.requests["files"] == 1 and figma.requests["meta"] == 2
    revalidation = body["figma_revalidation"]
    assert revalidation["revalidations"] == {"unchanged": 2, "changed": 0, "failed": 0}
    assert revalidation["unchanged_share"] == 1.0
    assert revalidation["downloads_avoided"] == 2 and revalidation["waited"] == 2
    assert revalidation["bytes_saved"] > 2 * 100_000  # two documents of the double's size
    assert revalidation["worst_staleness_seconds"] == TTL
    [savings] = body["recommendations"]
    assert savings["code"] == "revalidation_savings"
    assert savings["observed"]["downloads_avoided"] == 2
    assert "2 full downloads" in savings["message"]


async def test_copies_lost_to_the_byte_budget_become_a_recommendation(figma: FigmaDouble) -> None:
    # One document of the double is about 400 KB: a 600 KB budget holds one file, not two.
    settings = figma_settings(figma, figma_cache_max_bytes=600_000)
    async with running_app(**settings) as app:
        for key in ("ONE", "TWO", "ONE"):
            await app.json(f"/api/figma/files/{key}")
        body = await app.json(f"{BASE}/cache-stats")

    assert figma.requests["files"] == 3
    [advice] = [a for a in body["recommendations"] if a["code"] == "raise_cache_bytes"]
    assert advice["setting"] == "--figma-cache-max-bytes" and advice["current"] == 600_000
    assert advice["observed"]["evicted_early"] == 1
    assert advice["suggested"] >= 600_000 + advice["observed"]["evicted_early_bytes"]


async def test_a_quota_hold_is_an_info_issue_in_the_health_check(figma: FigmaDouble) -> None:
    settings = figma_settings(figma, figma_cache_ttl=TTL, figma_cache_stale_seconds=60)
    async with running_app(**settings) as app:
        await app.json("/api/figma/files/ABC")
        await asyncio.sleep(PAST_TTL)
        figma.fail("meta", Fault("429", retry_after=30))
        await app.json("/api/figma/files/ABC")  # stale: revalidated in the background: 429
        await wait_for(lambda: figma.requests["meta"] == 1, timeout=10)
        body: dict[str, Any] = {}

        async def held() -> bool:
            body.update(await app.json(f"{BASE}/health-check?refresh=true"))
            return any(i["code"] == "figma_cache_quota_hold" for i in body["issues"])

        await wait_for(held, timeout=10)
        stats = await app.json(f"{BASE}/cache-stats")

    [issue] = [i for i in body["issues"] if i["code"] == "figma_cache_quota_hold"]
    assert issue["severity"] == "info" and issue["penalty"] == 0
    assert "Tier 2 answered 429" in issue["message"]
    assert stats["figma_revalidation"]["quota_short"].startswith("Figma Tier 2 answered 429")
    assert "quota_hold" in {a["code"] for a in stats["recommendations"]}
