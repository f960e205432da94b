"""The exporter process with --log-format json --access-log: every stderr line is one JSON object,
requests are logged with their fields, and the secrets it was given never appear."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import requests

from tests.integration.web.test_cli_serve import exporter_command
from tests.support.redis_server import free_port, wait_until

TOKEN = "figd_never-in-logs-123"


def test_json_logs_and_access_log_from_the_process(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_EXPORTER_")}
    env |= {"SESSION_EXPORTER_FIGMA_TOKEN": TOKEN, "SESSION_EXPORTER_LOG_FORMAT": "json"}
    args = ["--listen", f"127.0.0.1:{port}", "--access-log", "--admin-token", "adm1n-s3cret"]
    process = subprocess.Popen(
        [*exporter_command(), *args], env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(f"{base}/-/ready", timeout=1).ok, timeout=20)
        requests.get(f"{base}/api/session-metrics/realtime?token={TOKEN}", timeout=5)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    stderr = process.stderr.read() if process.stderr else ""
    lines = [json.loads(line) for line in stderr.splitlines()]
    assert TOKEN not in stderr and "adm1n-s3cret" not in stderr
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    access = [line for line in lines if line["logger"] == "exporter.access"]
    realtime = [a for a in access if a["path"] == "/api/session-metrics/realtime"]
    assert realtime and realtime[0]["status"] == 200 and realtime[0]["method"] == "GET"
    assert any(line["message"].startswith("serving on http://") for line in lines)
