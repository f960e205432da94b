"""A real MCP server for tests, built with the official SDK, run in a subprocess a test can kill.

It mirrors Figma's desktop Dev Mode MCP server as far as the exporter meets it: the tools
`get_screenshot` (a PNG as ImageContent), `get_metadata` (XML-ish text), `get_design_context`
(code) and `get_variable_defs` (JSON text), each taking `nodeId` (pattern
`^$|^(?:-?\\d+[:-]-?\\d+)$`; empty = the current selection) and optional `clientLanguages` and
`clientFrameworks`, and no `fileKey`: like the desktop app, it answers from the file open in it
(`open_file`, embedded in every screenshot's PNG and text). Arguments a tool does not declare are
refused with a tool error, so a client that sends them is caught. With `remote=True` it is the
remote server (`https://mcp.figma.com/mcp`) instead: each tool also takes `fileKey` and answers
from that file. It speaks streamable HTTP on a
loopback port; `kill()` then `start()` brings it back on the same port (with `open_file` as it is
then), so a client can be shown to reconnect without restarting.

    server = McpServerProcess(open_file="FILE1").start()
    server.url        # http://127.0.0.1:PORT/mcp
    server.kill()     # SIGKILL, as a crash would
    server.open_file = "FILE2"
    server.start()    # same port again, another file open in the "app"

Run by hand: `python -m tests.support.mcp_server --port 8765 --open-file FILE1`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from tests.support.figma_double import png_of_size

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_BYTES = 4096  # the PNG every get_screenshot call returns is exactly this long
TOOLS = ("get_screenshot", "get_metadata", "get_design_context", "get_variable_defs")
NODE_ID_PATTERN = r"^$|^(?:-?\d+[:-]-?\d+)$"
DEFAULT_OPEN_FILE = "FILE1"

NodeId = Annotated[
    str,
    Field(
        pattern=NODE_ID_PATTERN,
        description='The ID of the node in the Figma document, eg. "123:456" or "123-456".'
        " If not provided, the currently selected node is used.",
    ),
]
ClientLanguages = Annotated[
    str, Field(description="A comma separated list of programming languages used by the client")
]
ClientFrameworks = Annotated[
    str, Field(description="A comma separated list of frameworks used by the client")
]


class StrictServer(MCPServer):
    """Refuses arguments a tool does not declare (the desktop server has no `fileKey`)."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        tool = self._tool_manager.get_tool(name)
        if tool is not None:
            declared = set(tool.parameters.get("properties", {}))
            unknown = sorted(set(arguments) - declared)
            if unknown:
                raise ToolError(f"unknown argument(s) for {name}: {', '.join(unknown)}")
        return await super().call_tool(name, arguments, context)


def build_server(open_file: str = DEFAULT_OPEN_FILE, remote: bool = False) -> MCPServer:
    """The server with the desktop tools, answering from `open_file` (or the remote server's,
    answering from the `fileKey` asked for)."""
    server: MCPServer = StrictServer("figma-dev-mode-double", log_level="WARNING")
    if remote:
        return _build_remote(server)

    @server.tool(description="Generate a screenshot for a given node or the currently selected.")
    def get_screenshot(
        nodeId: NodeId = "",
        clientLanguages: ClientLanguages = "",
        clientFrameworks: ClientFrameworks = "",
    ) -> Image:
        comment = f"file={open_file};node={nodeId}".encode()
        return Image(data=png_of_size(SCREENSHOT_BYTES, comment=comment), format="png")

    @server.tool(description="Get metadata for a node or page in the Figma desktop app.")
    def get_metadata(
        nodeId: NodeId = "",
        clientLanguages: ClientLanguages = "",
        clientFrameworks: ClientFrameworks = "",
    ) -> str:
        return (
            f'<frame id="{nodeId}" name="Frame {nodeId}" file="{open_file}"'
            ' x="0" y="0" width="320" height="200" />'
        )

    @server.tool(description="Generate UI code for a given node or the currently selected node.")
    def get_design_context(
        nodeId: NodeId = "",
        clientLanguages: ClientLanguages = "",
        clientFrameworks: ClientFrameworks = "",
    ) -> str:
        return f'export function Node() {{ return <div data-node-id="{nodeId}" /> }}'

    @server.tool(description="Get variable definitions for a given node id.")
    def get_variable_defs(
        nodeId: NodeId = "",
        clientLanguages: ClientLanguages = "",
        clientFrameworks: ClientFrameworks = "",
    ) -> str:
        return json.dumps({"color/primary": "#0d99ff", "spacing/md": "16"})

    return server


def _build_remote(server: MCPServer) -> MCPServer:
    @server.tool(description="Generate a screenshot for a given node of a file.")
    def get_screenshot(
        fileKey: str,
        nodeId: NodeId = "",
        clientLanguages: ClientLanguages = "",
        clientFrameworks: ClientFrameworks = "",
    ) -> Image:
        comment = f"file={fileKey};node={nodeId}".encode()
        return Image(data=png_of_size(SCREENSHOT_BYTES, comment=comment), format="png")

    @server.tool(description="Get metadata for a node of a file.")
    def get_metadata(fileKey: str, nodeId: NodeId = "") -> str:
        return f'<frame id="{nodeId}" file="{fileKey}" x="0" y="0" width="320" height="200" />'

    return server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class McpServerProcess:
    """The MCP server in a child process on a fixed loopback port."""

    def __init__(
        self, port: int | None = None, open_file: str = DEFAULT_OPEN_FILE, remote: bool = False
    ) -> None:
        self.port = port or free_port()
        self.open_file = open_file
        self.remote = remote
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 20.0) -> McpServerProcess:
        if self.running:
            return self
        command = [
            sys.executable,
            "-m",
            "tests.support.mcp_server",
            "--port",
            str(self.port),
            "--open-file",
            self.open_file,
            *(["--remote"] if self.remote else []),
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_listening(self.process, self.port, timeout, "MCP test server", self.kill)
        return self

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing its sessions, as a crash would."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)

    def stop(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_listening(
    process: subprocess.Popen[bytes], port: int, timeout: float, what: str, kill: Any
) -> None:
    """Until `port` accepts connections; fails if the process exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not _port_open(port):
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        if time.monotonic() > deadline:
            kill()
            raise TimeoutError(f"{what} not listening on {port} within {timeout}s")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--open-file", default=DEFAULT_OPEN_FILE)
    parser.add_argument("--remote", action="store_true")
    args = parser.parse_args()
    build_server(args.open_file, args.remote).run(
        "streamable-http", host="127.0.0.1", port=args.port
    )


if __name__ == "__main__":
    main()
