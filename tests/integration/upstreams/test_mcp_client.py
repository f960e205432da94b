"""The MCP client against a real MCP server (the SDK's MCPServer over streamable HTTP, in a
subprocess): tools, screenshots, per-tool metrics, and reconnection after the server dies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from exporter.core.errors import InvalidRequest, UpstreamError, UpstreamUnavailable
from exporter.core.metrics import Metrics
from exporter.upstreams.mcp_client import McpClient
from tests.support.mcp_server import SCREENSHOT_BYTES, TOOLS, McpServerProcess


@pytest.fixture(scope="module")
def server() -> Iterator[McpServerProcess]:
    process = McpServerProcess().start()
    yield process
    process.stop()


@pytest.fixture
def running(server: McpServerProcess) -> McpServerProcess:
    return server.start()  # a previous test may have killed it


@pytest_asyncio.fixture
async def client(running: McpServerProcess) -> AsyncIterator[McpClient]:
    mcp = McpClient(running.url, Metrics(CollectorRegistry()), timeout=5, reconnect_max=0.5)
    await mcp.start()
    yield mcp
    await mcp.close()


def requests(mcp: McpClient, endpoint: str, status: str) -> float:
    return mcp.recorder.counts[endpoint, status]


async def test_tools_screenshot_and_text_tools(client: McpClient) -> None:
    tools = {tool["name"] for tool in await client.list_tools()}
    assert set(TOOLS) <= tools
    image = await client.get_screenshot("FILE1", "1:2")
    assert len(image.data) == SCREENSHOT_BYTES and image.data[:4] == b"\x89PNG"
    assert image.content_type == "image/png"
    metadata = await client.call_tool("get_metadata", {"nodeId": "1:2"})
    assert 'id="1:2"' in metadata.texts[0]
    code = await client.call_tool("get_design_context", {"nodeId": "1:2"})
    assert "data-node-id" in code.texts[0]
    assert requests(client, "get_screenshot", "2xx") == 1
    assert requests(client, "list_tools", "2xx") == 1
    assert requests(client, "initialize", "2xx") == 1  # one long-lived session for all of it
    assert client.connects == 1


async def test_unknown_tools_fail_clearly_under_one_label(client: McpClient) -> None:
    with pytest.raises(UpstreamError, match="MCP tool get_code reported an error"):
        await client.call_tool("get_code", {"nodeId": "1:2"})  # the tool's old name
    with pytest.raises(UpstreamError):
        await client.call_tool("get_metadata", {"nodeId": 12})  # not a string
    assert requests(client, "other_tool", "error") == 1
    assert requests(client, "get_metadata", "error") == 1
    assert client.connected  # a bad call does not cost the session


async def test_concurrent_calls_share_the_session(client: McpClient) -> None:
    images = await asyncio.gather(*(client.get_screenshot("FILE1", f"1:{i}") for i in range(10)))
    assert all(len(image.data) == SCREENSHOT_BYTES for image in images)
    assert client.connects == 1


async def test_dead_server_fails_fast_then_reconnects(
    client: McpClient, running: McpServerProcess
) -> None:
    await client.ping()
    running.kill()
    try:
        for _ in range(3):
            with pytest.raises(UpstreamUnavailable, match="MCP server"):
                await asyncio.wait_for(client.get_screenshot("FILE1", "1:2"), 3)
        assert not client.connected
        assert requests(client, "get_screenshot", "error") >= 3
    finally:
        running.start()
    image = await client.get_screenshot("FILE1", "1:2")  # no restart of the client needed
    assert len(image.data) == SCREENSHOT_BYTES
    assert client.connected and client.connects == 2


async def test_a_restarted_server_is_used_transparently(
    client: McpClient, running: McpServerProcess
) -> None:
    await client.ping()
    running.kill()
    running.start()  # the held session id means nothing to the new process
    image = await client.get_screenshot("FILE1", "1:2")
    assert len(image.data) == SCREENSHOT_BYTES
    assert client.connects == 2


async def test_close_is_prompt_even_while_the_server_is_down(running: McpServerProcess) -> None:
    mcp = McpClient(running.url, Metrics(CollectorRegistry()), timeout=2)
    await mcp.start()
    await mcp.ping()
    running.kill()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await mcp.close()
        assert loop.time() - started < 4  # under close()'s own 5 s fallback
        with pytest.raises(UpstreamUnavailable, match="not running"):
            await mcp.ping()
    finally:
        running.start()


# -- issue 12: the desktop Dev Mode server's tools as they are declared --------------------------


async def test_only_declared_arguments_are_sent(client: McpClient) -> None:
    """The desktop `get_screenshot` has no `fileKey`: a server that checks would refuse it."""
    image = await client.get_screenshot("FILE1", "1:2")
    assert len(image.data) == SCREENSHOT_BYTES
    assert client.screenshot_takes_file() is False
    for tool in TOOLS[1:]:
        output = await client.call_tool(tool, {"nodeId": "1:2", "fileKey": "FILE1"})
        assert output.texts


async def test_a_node_id_the_server_refuses_is_a_clear_invalid_request(client: McpClient) -> None:
    with pytest.raises(InvalidRequest, match="nodeId 'I1:2;3:4' is not accepted"):
        await client.get_screenshot("FILE1", "I1:2;3:4")
    assert (await client.get_screenshot("FILE1", "1-2")).data  # the URL form is declared too
