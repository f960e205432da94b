"""Upstream doubles shared by the integration tests, one per test module (tests may kill them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.support.figma_double import FigmaDouble
from tests.support.mcp_server import McpServerProcess


@pytest_asyncio.fixture(scope="module")
async def double() -> AsyncIterator[FigmaDouble]:
    """The local Figma REST API double."""
    server = await FigmaDouble().start()
    yield server
    await server.close()


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[McpServerProcess]:
    """A real MCP server (the SDK's MCPServer) in a subprocess on a free loopback port."""
    process = McpServerProcess().start()
    yield process
    process.stop()
