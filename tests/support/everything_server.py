"""`@modelcontextprotocol/server-everything` (a real third-party MCP server, pinned in tests/npm)
over streamable HTTP in a child process: `node dist/index.js streamableHttp` with `PORT`, bound
to loopback by tests/support/loopback.cjs. A test can kill it and start it again on the same
port; the new process knows none of the old sessions (it answers HTTP 400, JSON-RPC -32000
"No valid session ID").

    server = EverythingServer().start()
    server.url        # http://127.0.0.1:PORT/mcp
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.support.mcp_server import free_port, wait_listening
from tests.support.npm_packages import SERVER_EVERYTHING, node, require

LOOPBACK = Path(__file__).with_name("loopback.cjs")


class EverythingServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 30.0) -> EverythingServer:
        if self.running:
            return self
        entry = require(SERVER_EVERYTHING)
        command = [node(), "--require", str(LOOPBACK), str(entry), "streamableHttp"]
        env = {**os.environ, "PORT": str(self.port)}
        self.process = subprocess.Popen(
            command,
            cwd=entry.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_listening(self.process, self.port, timeout, "server-everything", self.kill)
        return self

    def kill(self) -> None:
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
