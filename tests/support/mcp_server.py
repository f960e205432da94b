"""A real MCP server for tests, built with the official SDK, run in a subprocess a test can kill.

It mimics the tools of Figma's Dev Mode MCP server that the exporter uses: `get_screenshot`
(a PNG as ImageContent), `get_metadata` (XML-ish text) and `get_code` (text). It speaks
streamable HTTP on a loopback port; `kill()` then `start()` brings it back on the same port, so
a client can be shown to reconnect without restarting.

    server = McpServerProcess().start()
    server.url        # http://127.0.0.1:PORT/mcp
    server.kill()     # SIGKILL, as a crash would
    server.start()    # same port again

Run by hand: `python -m tests.support.mcp_server --port 8765`.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from mcp.server.mcpserver import Image, MCPServer

from tests.support.figma_double import png_of_size

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_BYTES = 4096  # the PNG every get_screenshot call returns is exactly this long
TOOLS = ("get_screenshot", "get_metadata", "get_code")


def build_server() -> MCPServer:
    """The MCPServer with the three tools (imports at module level: annotations must resolve)."""
    server: MCPServer = MCPServer("figma-dev-mode-double", log_level="WARNING")

    @server.tool(description="Screenshot of a node as PNG.")
    def get_screenshot(nodeId: str, fileKey: str = "") -> Image:
        return Image(data=png_of_size(SCREENSHOT_BYTES), format="png")

    @server.tool(description="Sparse XML outline of a node.")
    def get_metadata(nodeId: str, fileKey: str = "") -> str:
        return f'<frame id="{nodeId}" name="Frame {nodeId}" x="0" y="0" width="320" height="200" />'

    @server.tool(description="Generated code for a node.")
    def get_code(nodeId: str, fileKey: str = "") -> str:
        return f'export function Node() {{ return <div data-node-id="{nodeId}" /> }}'

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

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
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
        command = [sys.executable, "-m", "tests.support.mcp_server", "--port", str(self.port)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while not _port_open(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"MCP test server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(
                    f"MCP test server not listening on {self.port} within {timeout}s"
                )
            time.sleep(0.05)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    build_server().run("streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
