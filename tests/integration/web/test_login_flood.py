"""Wrong passwords never stall the journal: a flood of logins during a Redis outage, against the
exporter process with basic auth (bcrypt cost 12) and a journal directory.

Before: bcrypt ran on asyncio's default executor, where the journal's appends also run; 32
connections sending wrong passwords held authenticated writes for seconds. Now bcrypt has a thread
of its own, so the writes go through while the flood lasts. Each write gets a generous deadline
(a write takes milliseconds; the old queue took seconds).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import bcrypt
import pytest
import yaml

from tests.support.exporter_cli import ExporterCli
from tests.support.redis_server import free_port

PASSWORD = "the right one"
ATTACKERS = 64
WRITES = 20
WRITE_DEADLINE = 3.0  # seconds; see the module docstring
# The first login, before the flood: one bcrypt (cost 12) that a starved machine takes seconds to
# run. Not what is under test (the writes during the flood are): a generous deadline.
FIRST_LOGIN_DEADLINE = 30.0


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[ExporterCli]:
    config = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12)).decode()
    config.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": hashed}}))
    args = [
        "--web-config-file",
        str(config),
        "--journal-dir",
        str(tmp_path / "journal"),
        "--redis-url",
        f"redis://127.0.0.1:{free_port()}/0",  # nothing there: an outage from the start
    ]
    running = ExporterCli(tmp_path, args).start()
    try:
        running.wait_ready()
        yield running
    finally:
        assert running.stop() == 0
        assert "Traceback" not in running.log()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def attack(http: aiohttp.ClientSession, url: str, answers: list[int]) -> None:
    """Wrong passwords, a new one each time (so no answer can be remembered), until cancelled."""
    while True:
        wrong = basic("prometheus", secrets.token_hex(8))
        async with http.get(url, headers=wrong) as response:
            answers.append(response.status)


async def test_writes_go_through_a_flood_of_wrong_passwords(exporter: ExporterCli) -> None:
    login = basic("prometheus", PASSWORD)
    deadline = aiohttp.ClientTimeout(total=WRITE_DEADLINE)
    sessions = f"{exporter.base}/api/sessions"
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=ATTACKERS)) as flood,
        aiohttp.ClientSession(headers=login, timeout=deadline) as client,
    ):
        first_login = aiohttp.ClientTimeout(total=FIRST_LOGIN_DEADLINE)  # a login in use before
        async with client.get(f"{exporter.base}/metrics", timeout=first_login) as scrape:
            assert scrape.status == 200
            assert "store_fallback_active 1.0" in await scrape.text()
        answers: list[int] = []
        target = f"{exporter.base}/api/session-metrics/realtime"
        attackers = [asyncio.create_task(attack(flood, target, answers)) for _ in range(ATTACKERS)]
        try:
            while len(answers) < ATTACKERS:  # the flood is on: bcrypt's queue is full
                await asyncio.sleep(0.05)
            for n in range(WRITES):
                async with client.post(sessions, json={"data": {"n": n}}) as created:
                    assert created.status == 201, await created.text()
        finally:
            for task in attackers:
                task.cancel()
            await asyncio.gather(*attackers, return_exceptions=True)
    # Every attacker was answered meanwhile: 401, or 503 while bcrypt's queue is full.
    assert len(answers) >= ATTACKERS and set(answers) <= {401, 503}
