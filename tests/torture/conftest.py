"""Deployments and fleets for the torture tests, started once per module (exporter processes take
seconds to start) and brought back to health before each test (`scenario_trial`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.torture.deployments import Cluster, Sentinel, Standalone
from tests.torture.fleet import Fleet, ReplicaSpec, replica_specs


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this package is a torture test (`-m torture` runs them alone)."""
    for item in items:
        if "tests/torture/" in item.nodeid:
            item.add_marker(pytest.mark.torture)


@pytest.fixture(scope="module")
def standalone() -> Iterator[Standalone]:
    deployment = Standalone(persistent=True)
    yield deployment
    deployment.stop()


@pytest.fixture(scope="module")
def sentinel() -> Iterator[Sentinel]:
    deployment = Sentinel()
    yield deployment
    deployment.stop()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    deployment = Cluster()
    yield deployment
    deployment.stop()


async def started_fleet(url: str, specs: list[ReplicaSpec]) -> AsyncIterator[Fleet]:
    fleet = None
    try:
        fleet = Fleet(url, specs)
        await fleet.start()
        yield fleet
    finally:
        if fleet is not None:
            fleet.remove()


@pytest_asyncio.fixture(scope="module")
async def standalone_fleet(standalone: Standalone) -> AsyncIterator[Fleet]:
    """Two replicas; A keeps its journal on a small disk (when this process may mount one)."""
    async for fleet in started_fleet(standalone.url, replica_specs(2, small_disk="A")):
        yield fleet


@pytest_asyncio.fixture(scope="module")
async def stepped_fleet(standalone: Standalone) -> AsyncIterator[Fleet]:
    """Two replicas; B runs under libfaketime, its wall clock at the test's command."""
    async for fleet in started_fleet(standalone.url, replica_specs(2, stepped_clock="B")):
        yield fleet


@pytest_asyncio.fixture(scope="module")
async def sentinel_fleet(sentinel: Sentinel) -> AsyncIterator[Fleet]:
    async for fleet in started_fleet(sentinel.url, replica_specs(2)):
        yield fleet


@pytest_asyncio.fixture(scope="module")
async def cluster_fleet(cluster: Cluster) -> AsyncIterator[Fleet]:
    async for fleet in started_fleet(cluster.url, replica_specs(2)):
        yield fleet
