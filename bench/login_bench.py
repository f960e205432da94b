"""Basic-auth logins: what a wrong password costs for a known and an unknown user (they must cost
the same: no user-name oracle), and authenticated writes while wrong passwords flood in.

1. In-process, `PasswordChecker` with a cost-12 user: wrong passwords for that user, and for a
   user that does not exist, interleaved, each password new (nothing remembered). Goal: the
   unknown user within 0.8-1.25x of the known one.
2. The exporter process with that web configuration, a journal directory and Redis down (every
   write goes to the journal): the latency of authenticated `POST /api/sessions`, alone and while
   32 connections send wrong passwords, measured in the same run. Goal: p50 within 2x.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import bcrypt
import requests
import yaml

from bench.support import Result, free_port, median
from exporter.web.password_checks import PasswordChecker, dummy_hash

COST = 12
PASSWORD = "the right one"
CHECKS = 8
ATTACKERS = 32
WRITES = 60


async def check_costs(hashed: bytes) -> tuple[float, float]:
    """Median ms of a wrong password: (known user, unknown user), interleaved."""
    checker = PasswordChecker()
    dummy = dummy_hash([hashed])
    known: list[float] = []
    unknown: list[float] = []
    try:
        for _ in range(CHECKS):
            for user, stored, into in (("prometheus", hashed, known), ("nobody", None, unknown)):
                started = time.perf_counter()
                await checker.check(user, secrets.token_bytes(12), stored, dummy)
                into.append((time.perf_counter() - started) * 1000)
    finally:
        checker.close()
    return median(known), median(unknown)


def basic(password: str) -> dict[str, str]:
    token = base64.b64encode(f"prometheus:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def attack(http: aiohttp.ClientSession, url: str) -> None:
    while True:
        try:
            async with http.get(url, headers=basic(secrets.token_hex(8))) as answer:
                await answer.read()
        except aiohttp.ClientError:
            await asyncio.sleep(0.01)


async def write_latencies(base: str, flood: bool) -> list[float]:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=ATTACKERS)) as attackers,
        aiohttp.ClientSession(headers=basic(PASSWORD)) as client,
    ):
        async with client.get(f"{base}/metrics") as scrape:  # the login is known before
            assert scrape.status == 200
        tasks = []
        if flood:
            target = f"{base}/api/session-metrics/realtime"
            tasks = [asyncio.create_task(attack(attackers, target)) for _ in range(ATTACKERS)]
            await asyncio.sleep(1.0)
        latencies = []
        try:
            for n in range(WRITES):
                started = time.perf_counter()
                async with client.post(f"{base}/api/sessions", json={"data": {"n": n}}) as made:
                    assert made.status == 201, made.status
                latencies.append((time.perf_counter() - started) * 1000)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return latencies


def exporter_with_logins(directory: Path, hashed: bytes) -> tuple[subprocess.Popen[bytes], str]:
    config = directory / "web.yml"
    config.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": hashed.decode()}}))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_EXPORTER_")}
    args = [
        *("--listen", f"127.0.0.1:{port}", "--web-config-file", str(config)),
        *("--journal-dir", str(directory / "journal")),
        *("--redis-url", f"redis://127.0.0.1:{free_port()}/0"),  # down: writes are journalled
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/-/ready", timeout=0.5).ok:
                return process, base
        except requests.ConnectionError:
            time.sleep(0.05)
    process.terminate()
    raise RuntimeError("exporter did not start")


async def write_costs(hashed: bytes) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory() as directory:
        process, base = exporter_with_logins(Path(directory), hashed)
        try:
            quiet, flooded = [], []
            for _ in range(2):  # interleaved: quiet, flood, quiet, flood
                quiet += await write_latencies(base, flood=False)
                flooded += await write_latencies(base, flood=True)
            return quiet, flooded
        finally:
            process.terminate()
            process.wait(20)


async def run() -> list[Result]:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(COST))
    known, unknown = await check_costs(hashed)
    quiet, flooded = await write_costs(hashed)
    ratio = unknown / known
    return [
        Result(
            f"wrong password, unknown user vs known user (bcrypt cost {COST})",
            unknown,
            known,
            "ms",
            "0.8-1.25x",
            0.8 <= ratio <= 1.25,
        ),
        Result(
            f"authenticated write p50 (journal, Redis down), {ATTACKERS} wrong-password"
            " connections vs none",
            median(flooded),
            median(quiet),
            "ms",
            "<= 2x",
            median(flooded) <= 2 * median(quiet),
            f"max ms quiet {max(quiet):.1f}, flood {max(flooded):.1f}",
        ),
    ]
