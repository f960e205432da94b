"""The console script as a user runs it: bare command, memory only; SIGTERM drains gracefully."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.support.redis_server import free_port, wait_until

DEFAULT_PORT = 9464


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def exporter_command() -> list[str]:
    """The installed console script, exactly what a user types."""
    script = Path(sys.executable).with_name("session-metrics-exporter")
    assert script.exists(), "the console script is not installed: pip install -e ."
    return [str(script)]


@pytest.fixture
def bare_exporter(tmp_path: Path) -> Iterator[str]:
    """`session-metrics-exporter` with no options, no Redis, no Figma, no MCP."""
    with exporter_process(tmp_path) as (base, _):
        yield base


@contextmanager
def exporter_process(
    tmp_path: Path, settings: dict[str, str] | None = None
) -> Iterator[tuple[str, list[str]]]:
    """The console script with only `settings` in its environment, serving until the block ends;
    its stderr is appended to the list once it has stopped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_EXPORTER_")}
    env.update(settings or {})
    port = DEFAULT_PORT
    if not port_is_free(port):  # a developer's own exporter may hold the default port
        port = free_port()
        env["SESSION_EXPORTER_LISTEN"] = f"127.0.0.1:{port}"
    output: list[str] = []
    process = subprocess.Popen(
        exporter_command(), cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # Ready must come from our process, not from another exporter that took the port first.
        wait_until(
            lambda: (
                process.poll() is None
                and requests.get(f"{base}/-/ready", timeout=1).status_code == 200
            ),
            timeout=20,
        )
        assert process.poll() is None, "the exporter exited during start-up"
        yield base, output
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        stderr = process.stderr.read() if process.stderr else ""
        assert "Traceback" not in stderr
        output.append(stderr)


def test_bare_command_serves_sessions_from_memory(bare_exporter: str) -> None:
    created = requests.post(
        f"{bare_exporter}/api/sessions", json={"data": {"user": "ada"}}, timeout=5
    )
    assert created.status_code == 201
    session = created.json()
    fetched = requests.get(f"{bare_exporter}/api/sessions/{session['id']}", timeout=5)
    assert fetched.status_code == 200
    assert fetched.json()["data"] == {"user": "ada"}
    metrics = requests.get(f"{bare_exporter}/metrics", timeout=5).text
    assert "session_exporter_sessions_created_total 1.0" in metrics
    assert 'session_exporter_store_backend_up{backend="redis"} 0.0' in metrics


def test_the_server_freezes_its_start_up_objects_and_sets_the_young_threshold(
    tmp_path: Path,
) -> None:
    """Full collections then skip what start-up left (see exporter.app.gc_tuning)."""
    settings = {"SESSION_EXPORTER_GC_YOUNG_THRESHOLD": "5000"}
    with exporter_process(tmp_path, settings) as (base, output):
        assert requests.get(f"{base}/api/sessions/unknown", timeout=5).status_code == 404
    logged = re.search(
        r"cycle collector: (\d+) start-up objects frozen, young threshold (\d+)", output[0]
    )
    assert logged is not None, output[0]
    assert int(logged.group(1)) > 10_000 and logged.group(2) == "5000"


def test_python_dash_m_is_the_same_program() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--version"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    assert "session-metrics-exporter" in result.stdout


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [*exporter_command(), "--listen", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=tmp_path,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
