"""The Figma cache against the Figma double, counting its requests per endpoint: an unchanged file
is downloaded once and revalidated with /meta; a changed one is downloaded again; readers get the
stale copy at once within the stale bound; a short quota holds back; nodes and renders follow the
file version.

The TTLs are a fraction of a second and the tests sleep past them: a sleep is a lower bound on
the age, so each read's decision is the same however loaded the machine is."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from exporter.upstreams.figma_client import FigmaClient
from tests.integration.upstreams.test_figma_manager import Stack, open_stack
from tests.support.figma_double import FIRST_VERSION, Fault, FigmaDouble

TTL = 0.2
PAST_TTL = 0.3
OLD = str(FIRST_VERSION)


@pytest.fixture(autouse=True)
def fresh_double(double: FigmaDouble) -> None:
    double.reset()


def revalidations(stack: Stack, result: str) -> float:
    return stack.sample("figma_cache_revalidations_total", result=result)


async def eventually(condition: Callable[[], bool], what: str, deadline: float = 10.0) -> None:
    """Wait (generously) for something the background does."""
    async with asyncio.timeout(deadline):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what


async def test_an_unchanged_file_is_downloaded_once(double: FigmaDouble) -> None:
    async with open_stack(double, figma_cache_ttl=TTL, figma_cache_stale_seconds=0) as stack:
        first = await stack.manager.get_file("FILE1", depth=2)
        for _ in range(3):
            await asyncio.sleep(PAST_TTL)
            assert await stack.manager.get_file("FILE1", depth=2) == first
        assert double.requests["files"] == 1
        assert double.requests["meta"] == 3  # one revalidation per expiry
        assert revalidations(stack, "unchanged") == 3
        assert revalidations(stack, "changed") == revalidations(stack, "failed") == 0
        assert stack.sample("figma_cache_downloads_avoided_total") == 3
        assert stack.sample("figma_cache_saved_bytes_total") > 3 * 10_000
        assert (
            stack.sample(
                "upstream_requests_total", service="figma_api", endpoint="meta", status="2xx"
            )
            == 3
        )


async def test_a_changed_file_is_downloaded_again(double: FigmaDouble) -> None:
    async with open_stack(double, figma_cache_ttl=TTL, figma_cache_stale_seconds=0) as stack:
        assert (await stack.manager.get_file("FILE1"))["version"] == OLD
        new = double.touch("FILE1")
        assert (await stack.manager.get_file("FILE1"))["version"] == OLD  # within the TTL
        await asyncio.sleep(PAST_TTL)
        assert (await stack.manager.get_file("FILE1"))["version"] == new
        assert double.requests["files"] == 2 and double.requests["meta"] == 1
        assert revalidations(stack, "changed") == 1
        assert stack.sample("figma_cache_downloads_avoided_total") == 0


async def test_nodes_and_renders_are_fetched_once_per_file_version(double: FigmaDouble) -> None:
    async with open_stack(double, figma_cache_ttl=TTL, figma_cache_stale_seconds=0) as stack:

        async def read_all() -> tuple[dict[str, Any], str]:
            nodes = await stack.manager.get_nodes("FILE1", ["1:2", "1:3"])
            shot = await stack.manager.screenshot("FILE1", "1:2", source="api", scale=2)
            return nodes, shot.sha256

        before = await read_all()
        await asyncio.sleep(PAST_TTL)
        assert await read_all() == before
        assert double.requests["nodes"] == 1
        assert double.requests["images"] == 1 and double.requests["image_download"] == 1
        # One per expiry: the nodes answer said the version, the render reused it.
        assert double.requests["meta"] == 1

        new = double.touch("FILE1")
        await asyncio.sleep(PAST_TTL)
        nodes, _ = await read_all()
        assert nodes["version"] == new
        assert double.requests["nodes"] == 2
        assert double.requests["images"] == 2 and double.requests["image_download"] == 2


async def test_concurrent_readers_of_an_expired_file_share_one_revalidation(
    double: FigmaDouble,
) -> None:
    async with open_stack(double, figma_cache_ttl=TTL, figma_cache_stale_seconds=0) as stack:
        await stack.manager.get_file("FILE1")
        await asyncio.sleep(PAST_TTL)
        double.fail("meta", Fault("slow", delay=0.2))  # all ten arrive while it is in flight
        documents = await asyncio.gather(*(stack.manager.get_file("FILE1") for _ in range(10)))
        assert all(document["version"] == OLD for document in documents)
        assert double.requests["meta"] == 1 and double.requests["files"] == 1


async def test_readers_get_the_stale_copy_at_once_while_it_is_revalidated(
    double: FigmaDouble,
) -> None:
    async with open_stack(double, figma_cache_ttl=TTL, figma_cache_stale_seconds=60) as stack:
        await stack.manager.get_file("FILE1")
        new = double.touch("FILE1")
        await asyncio.sleep(PAST_TTL)
        double.fail("meta", Fault("slow", delay=1.0))
        served = await stack.manager.get_file("FILE1")
        # Answered from the cache, before /meta answered (it takes a second): no waiting.
        assert served["version"] == OLD
        await eventually(lambda: double.requests["meta"] == 1, "a background revalidation")
        assert double.requests["files"] == 1
        assert stack.sample("figma_cache_stale_served_total", reason="revalidating") == 1
        # The background found the change and downloaded the new version...
        await eventually(lambda: double.requests["files"] == 2, "a background download")
        await eventually(lambda: revalidations(stack, "changed") == 1, "a counted revalidation")
        await eventually(lambda: not stack.manager.versions._background, "the refresh to end")
        # ... which the next reader gets without another request.
        assert (await stack.manager.get_file("FILE1"))["version"] == new
        assert double.requests["files"] == 2 and double.requests["meta"] == 1


async def test_a_failed_revalidation_downloads_as_before(double: FigmaDouble) -> None:
    async with open_stack(double, figma_cache_ttl=TTL, figma_cache_stale_seconds=0) as stack:
        await stack.manager.get_file("FILE1")
        await asyncio.sleep(PAST_TTL)
        double.fail("meta", Fault("500"), times=None)
        assert (await stack.manager.get_file("FILE1"))["name"] == "Design FILE1"
        assert double.requests["files"] == 2
        assert revalidations(stack, "failed") == 1


async def test_a_token_without_the_metadata_scope_stops_asking(double: FigmaDouble) -> None:
    async with open_stack(double, figma_cache_ttl=TTL, figma_cache_stale_seconds=0) as stack:
        double.fail("meta", Fault("403"), times=None)
        await stack.manager.get_file("FILE1")
        for _ in range(2):
            await asyncio.sleep(PAST_TTL)
            await stack.manager.get_file("FILE1")
        assert double.requests["files"] == 3  # the fixed-TTL behaviour, without errors
        assert double.requests["meta"] == 1  # refused once: not asked again for a while
        assert stack.manager.versions.revalidation_refused


async def test_a_rate_limited_tier_holds_back_within_the_stale_bound(
    double: FigmaDouble,
) -> None:
    async with open_stack(double, figma_cache_ttl=TTL, figma_cache_stale_seconds=60) as stack:
        await stack.manager.get_file("FILE1")
        await asyncio.sleep(PAST_TTL)
        double.fail("meta", Fault("429", retry_after=30, limit_type="low"))
        await stack.manager.get_file("FILE1")  # stale: the background revalidation gets a 429
        await eventually(lambda: revalidations(stack, "failed") == 1, "the 429")
        await eventually(lambda: not stack.manager.versions._background, "the refresh to end")
        for _ in range(3):
            assert (await stack.manager.get_file("FILE1"))["version"] == OLD
        assert double.requests["meta"] == 1 and double.requests["files"] == 1
        assert stack.sample("figma_cache_stale_served_total", reason="quota") == 3
        client = stack.figma.figma
        assert isinstance(client, FigmaClient)
        shortage = client.quota_shortage("meta")
        assert shortage is not None and shortage.reason == "rate_limited"


async def test_the_new_series_exist_at_zero(double: FigmaDouble) -> None:
    async with open_stack(double) as stack:
        for result in ("unchanged", "changed", "failed"):
            assert revalidations(stack, result) == 0
        for reason in ("revalidating", "quota"):
            assert stack.sample("figma_cache_stale_served_total", reason=reason) == 0
        assert stack.sample("figma_cache_downloads_avoided_total") == 0
        assert stack.sample("figma_cache_saved_bytes_total") == 0
