"""Shared fixtures: real servers started once per test session on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from exporter.app import speedups
from tests.support.redis_server import RedisServer, start_any_redis
from tests.support.versions import report_lines


def pytest_configure(config: pytest.Config) -> None:
    """A mypyc build older than its source would test the old code: refuse to run."""
    stale = speedups.stale()
    if stale:
        raise pytest.UsageError(
            f"stale mypyc build of {', '.join(stale)}: `make speedups` rebuilds it, "
            "`make clean-speedups` removes it"
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Schemathesis gives every operation of a parametrized test the test's own node id (only
    its `name` says which operation); pytest-xdist keys its work by node id, so `make test` ran
    one operation of 20. Each gets the id pytest itself gives a node that names none (its parent's
    id and its name: `test_api_conforms[GET /metrics]`); the check says so if pytest changes."""
    for item in items:
        if not isinstance(item, pytest.Function) or item.name == item.originalname:
            continue
        if item.nodeid.endswith(f"::{item.originalname}") and item.parent is not None:
            item._id = item.parent.id.child(item.name)
            if not item.nodeid.endswith(f"::{item.name}"):
                raise pytest.UsageError(f"cannot give {item.name} a node id of its own")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return report_lines()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the whole session; a test that kills it must restart it."""
    server = start_any_redis()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A clean database on the shared server, usable after a previous test killed or paused it."""
    redis_server.ensure_running()
    client = redis_server.client()
    client.flushall()
    client.close()
    yield redis_server.url
