"""Shared fixtures: real servers started once per test session on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer, start_any_redis


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
