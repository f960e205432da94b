"""Fixtures the upstream tests expect, on our real servers: `aiohttp_client` (pytest-aiohttp's,
which this project does not depend on) and `redis`, an asyncio client of the session's shared
redis-server (`tests/conftest.py`: started once, flushed per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis import asyncio as aioredis

from tests.integration.library.upstream_aiohttp_session.typedefs import AiohttpClient, Current


@pytest.fixture(autouse=True)
def current_redis(redis_url: str) -> str:
    """Every test gets a flushed database on the shared server, known to the helpers."""
    Current.url = redis_url
    return redis_url


@pytest_asyncio.fixture
async def aiohttp_client() -> AsyncIterator[AiohttpClient]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def start(app: web.Application) -> TestClient[web.Request, web.Application]:
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest_asyncio.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()
