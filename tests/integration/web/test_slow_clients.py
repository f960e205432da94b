"""Slow and greedy clients against the exporter process, under `ulimit -n 1024`: real sockets that
send a request head at 1 byte/s, a body shorter than its Content-Length, many connections from
one address. Normal GETs keep working throughout; the slow ones are closed.

Before: 2,000 clients at 1 byte/s were never closed, and 1,100 of them made every normal GET fail
(the process ran out of descriptors and stopped accepting). The deadlines are short here, set
through the environment (`--web-header-timeout` 2 s, `--web-body-timeout` 1 s). How long normal
GETs take meanwhile is measured by `python -m bench slow-clients`, not asserted here.
"""

from __future__ import annotations

import asyncio
import resource
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import requests

from tests.support.exporter_cli import ExporterCli
from tests.support.redis_server import missing_dependency, wait_until

EXPORTER_FILES = 1024  # the exporter's open-files limit (soft and hard)
SLOW_CLIENTS = 2000
SLOW_ADDRESSES = 20  # 127.0.1.1-20, 100 connections each (under the per-client cap)
PER_CLIENT_CAP = 200
GREEDY = 300  # connections from one address: 100 over the cap
NORMAL_GETS = 150
HEAD = b"GET /api/session-metrics/realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4096
ENV = {
    "SESSION_EXPORTER_WEB_HEADER_TIMEOUT": "2",
    "SESSION_EXPORTER_WEB_BODY_TIMEOUT": "1",
    "SESSION_EXPORTER_WEB_MAX_CONNECTIONS_PER_CLIENT": str(PER_CLIENT_CAP),
}


def limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (EXPORTER_FILES, EXPORTER_FILES))


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterCli]:
    """The exporter under `ulimit -n 1024`; this process needs room for the 2,000 clients."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = SLOW_CLIENTS + GREEDY + 512
    if hard != resource.RLIM_INFINITY and hard < needed:
        missing_dependency(f"{needed} open files for the test", f"ulimit -n {needed}")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    workdir: Path = tmp_path_factory.mktemp("slow-clients")
    running = ExporterCli(workdir, [], ENV, preexec_fn=limit_open_files).start()
    try:
        yield running.wait_ready()
    finally:
        assert running.stop() == 0
        assert "Traceback" not in running.log()


@dataclass
class Slow:
    answer: bytes = b""
    closed: bool = False


async def trickle(port: int, address: str, slow: Slow) -> None:
    """Send the request head one byte a second until the server closes the connection."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
    except OSError:  # refused at once: closed as far as this client is concerned
        slow.closed = True
        return
    try:
        for byte in HEAD:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                slow.answer = await asyncio.wait_for(reader.read(4096), timeout=1.0)
            except TimeoutError:
                continue
            break  # an answer, or end of stream: the server closed it
    except OSError:
        pass
    finally:
        slow.closed = True
        writer.close()


async def normal_gets(base: str, count: int) -> list[int]:
    """GETs from a client of its own, one connection each, while the flood goes on."""
    statuses: list[int] = []
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True), timeout=timeout
    ) as http:
        for _ in range(count):
            async with http.get(f"{base}/api/session-metrics/realtime") as answer:
                statuses.append(answer.status)
            await asyncio.sleep(0.02)
    return statuses


def dropped(exporter: ExporterCli, reason: str) -> float:
    text = exporter.get("/metrics").text
    line = f'session_exporter_http_connections_dropped_total{{reason="{reason}"}} '
    return float(text.split(line, 1)[1].split()[0])


async def test_normal_gets_keep_working_under_2000_slow_clients(exporter: ExporterCli) -> None:
    slow = [Slow() for _ in range(SLOW_CLIENTS)]
    addresses = [f"127.0.1.{n % SLOW_ADDRESSES + 1}" for n in range(SLOW_CLIENTS)]
    flood = [
        asyncio.create_task(trickle(exporter.port, address, state))
        for address, state in zip(addresses, slow, strict=True)
    ]
    try:
        statuses = await normal_gets(exporter.base, NORMAL_GETS)
        assert statuses == [200] * NORMAL_GETS
        for _ in range(400):  # all closed, by their deadline or to make room (≤ 20 s)
            if all(state.closed for state in slow):
                break
            await asyncio.sleep(0.05)
        assert all(state.closed for state in slow), sum(not s.closed for s in slow)
    finally:
        for task in flood:
            task.cancel()
        await asyncio.gather(*flood, return_exceptions=True)
    timed_out = [s for s in slow if s.answer.startswith(b"HTTP/1.1 408 ")]
    assert timed_out and b'"request_timeout"' in timed_out[0].answer
    assert await asyncio.to_thread(dropped, exporter, "header_timeout") >= len(timed_out)
    assert await asyncio.to_thread(dropped, exporter, "total_limit") > 0  # 2,000 > the cap
    log = exporter.log()
    assert "request head not complete within 2 s (--web-header-timeout)" in log
    assert log.count("request head not complete") < 10  # one line, not one per connection


async def test_connections_over_the_per_client_cap_are_refused(exporter: ExporterCli) -> None:
    streams = []
    try:
        for _ in range(GREEDY):
            streams.append(
                await asyncio.open_connection(
                    "127.0.0.1", exporter.port, local_addr=("127.0.2.1", 0)
                )
            )
        reads = [asyncio.wait_for(reader.read(1), timeout=1.0) for reader, _ in streams]
        ends = await asyncio.gather(*reads, return_exceptions=True)
        closed = sum(1 for end in ends if end == b"")  # the others are open, silent: timed out
        assert closed == GREEDY - PER_CLIENT_CAP
        answer = await asyncio.to_thread(exporter.get, "/api/session-metrics/realtime")
        assert answer.status_code == 200  # another address is served meanwhile
    finally:
        for _, writer in streams:
            writer.close()
    assert await asyncio.to_thread(dropped, exporter, "client_limit") >= GREEDY - PER_CLIENT_CAP


def test_a_body_shorter_than_its_content_length(exporter: ExporterCli) -> None:
    """Answered 408 when the body deadline passes, then closed: not held."""
    with socket.create_connection(("127.0.0.1", exporter.port), timeout=10) as sock:
        head = (
            "POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"data": {')
        answer = b""
        while chunk := sock.recv(4096):  # until the server closes (10 s at most)
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 ") and b'"request_timeout"' in answer
    wait_until(lambda: dropped(exporter, "body_timeout") >= 1)
    assert requests.get(f"{exporter.base}/-/healthy", timeout=10).ok
