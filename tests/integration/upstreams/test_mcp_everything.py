"""The MCP client's protocol behaviour against a real third-party server,
`@modelcontextprotocol/server-everything` (node): connect, tools with declared schemas, a kill,
a restart that forgets every session, and a session the server no longer knows."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from exporter.core.errors import UpstreamUnavailable
from exporter.core.metrics import Metrics
from exporter.upstreams.mcp_client import McpClient
from tests.support.everything_server import EverythingServer


@pytest.fixture(scope="module")
def everything() -> Iterator[EverythingServer]:
    server = EverythingServer().start()
    yield server
    server.stop()


@pytest_asyncio.fixture
async def client(everything: EverythingServer) -> AsyncIterator[McpClient]:
    everything.start()  # a previous test may have killed it
    mcp = McpClient(everything.url, Metrics(CollectorRegistry()), timeout=10, reconnect_max=0.5)
    await mcp.start()
    yield mcp
    await mcp.close()


def test_it_listens_on_loopback_only(everything: EverythingServer) -> None:
    assert everything.process is not None
    listening = "".join(Path(f"/proc/net/{n}").read_text().lower() for n in ("tcp", "tcp6"))
    port = f":{everything.port:04x} "
    lines = [line for line in listening.splitlines() if port in line and " 0a " in line]
    assert lines, "server-everything is not listening"
    # 0100007F is 127.0.0.1 in /proc/net/tcp; anything else (0.0.0.0, ::) would be reachable.
    assert all(line.split()[1].startswith("0100007f:") for line in lines), lines
    with socket.create_connection(("127.0.0.1", everything.port), timeout=2):
        pass


async def test_connect_list_tools_and_call_with_declared_arguments(client: McpClient) -> None:
    tools = {tool["name"] for tool in await client.list_tools()}
    assert {"echo", "get-tiny-image"} <= tools
    # An argument echo does not declare is not sent (zod would drop or refuse it).
    output = await client.call_tool("echo", {"message": "hello", "fileKey": "FILE1"})
    assert output.texts == ["Echo: hello"]
    image = await client.call_tool("get-tiny-image", {})
    assert image.images and image.images[0].content_type == "image/png"
    assert client.connects == 1


async def test_kill_fails_fast_and_a_restart_is_used_without_restarting_the_client(
    client: McpClient, everything: EverythingServer
) -> None:
    await client.ping()
    everything.kill()
    try:
        with pytest.raises(UpstreamUnavailable):
            await client.call_tool("echo", {"message": "anyone?"})
    finally:
        everything.start()
    output = await client.call_tool("echo", {"message": "back"})
    assert output.texts == ["Echo: back"]
    assert client.connects == 2


async def test_a_forgotten_session_is_replaced(
    client: McpClient, everything: EverythingServer
) -> None:
    """Restarted between two calls, the server answers the held session id with HTTP 400 and
    JSON-RPC -32000 "No valid session ID": the client re-initialises and the call succeeds."""
    assert (await client.call_tool("echo", {"message": "one"})).texts == ["Echo: one"]
    everything.kill()
    everything.start()
    assert (await client.call_tool("echo", {"message": "two"})).texts == ["Echo: two"]
    assert client.connects == 2
    assert client.recorder.counts["initialize", "2xx"] == 2
