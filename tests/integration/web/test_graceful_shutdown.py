"""SIGTERM on a real process: readiness 503, the in-flight request finishes, nothing leaks."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import aiohttp

from tests.integration.web.test_cli_serve import exporter_command
from tests.support.figma_double import DEFAULT_TOKEN, Fault, FigmaDouble
from tests.support.redis_server import free_port

SLOW_UPSTREAM_SECONDS = 2.0
READY_WITHIN = 30.0


async def wait_ready(
    http: aiohttp.ClientSession, base: str, process: subprocess.Popen[str]
) -> None:
    # A deadline in time, as the other start-ups have (tests.support.exporter_cli): a loaded
    # machine starts the process in more than the 10 s that 200 polls used to allow.
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        assert process.poll() is None, "the exporter exited during start-up"
        try:
            async with http.get(f"{base}/-/ready") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the exporter never became ready")


async def test_sigterm_drains_then_finishes_in_flight_requests(
    redis_url: str, tmp_path: Path
) -> None:
    double = await FigmaDouble().start()
    double.fail("files", Fault("slow", delay=SLOW_UPSTREAM_SECONDS))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_EXPORTER_")}
    env["PYTHONWARNINGS"] = (
        "always::ResourceWarning"  # an unclosed Redis or HTTP connection would print
    )
    env["SESSION_EXPORTER_FIGMA_TOKEN"] = DEFAULT_TOKEN
    command = [
        *exporter_command(),
        "--listen",
        f"127.0.0.1:{port}",
        "--redis-url",
        redis_url,
        "--figma-api-url",
        double.url,
        "--figma-timeout",
        "5",
        "--shutdown-drain",
        "1",
    ]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, base, process)
            in_flight = asyncio.create_task(http.get(f"{base}/api/figma/files/AbCdEf123"))
            while double.requests["files"] == 0:
                await asyncio.sleep(0.02)
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            async with http.get(f"{base}/-/ready") as ready:
                assert ready.status == 503
                assert (await ready.json())["status"] == "stopping"
            response = await in_flight
            assert response.status == 200
            assert (await response.json())["name"]
            response.release()
        exit_code = await asyncio.to_thread(process.wait, 15)
        stderr = process.stderr.read() if process.stderr else ""
        assert exit_code == 0, stderr
        assert "Traceback" not in stderr
        assert "unclosed" not in stderr.lower(), stderr
        assert DEFAULT_TOKEN not in stderr
    finally:
        if process.poll() is None:
            process.kill()
        await double.close()
