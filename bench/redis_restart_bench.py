"""A Redis crash under load: TieredStorage vs aiohttp-session's RedisStorage, same app and load.

Both servers run the counter app of `bench.servers` (GET /count increments a counter in the
session). Per run and storage: a fresh redis-server with no persistence, then `CLIENTS` clients,
each with its own session and cookie jar, send GET /count back to back for `SECONDS`; Redis is
SIGKILLed at `KILL_AT` and restarted (empty) `DOWN` seconds later. Counted:

- failed requests: anything but 200 (RedisStorage answers 500 while Redis is down);
- lost increments: increments acknowledged with 200, minus the counters the clients read at the
  end (a session lost with Redis restarts from 1 under a new cookie).

Runs alternate between the storages. This is the table of docs/library.md ("Migrating from
RedisStorage"). About 40 s:

    python -m bench redis-restart
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from bench.http_bench import server
from bench.support import RedisProcess, Result

KINDS = {"TieredStorage": "counter-tiered", "RedisStorage": "counter-redis"}
CLIENTS = 20
SECONDS = 7.0
KILL_AT = 2.0
DOWN = 3.0


@dataclass
class Outcome:
    requests: int
    failed: int
    lost: int  # acknowledged increments the final counters do not hold

    def line(self) -> str:
        return f"{self.failed} failed of {self.requests}, {self.lost} increments lost"


async def client(base: str, until: float) -> tuple[int, int, int]:
    """One session's requests until `until`: (requests, failed, acknowledged - final count)."""
    jar = aiohttp.CookieJar(unsafe=True)  # 127.0.0.1: the jar must keep the session cookie
    requests = failed = acknowledged = 0
    async with aiohttp.ClientSession(base, cookie_jar=jar) as http:
        while time.monotonic() < until:
            requests += 1
            try:
                async with http.get("/count", timeout=aiohttp.ClientTimeout(total=5)) as reply:
                    if reply.status == 200:
                        acknowledged += 1
                    else:
                        failed += 1
                        await asyncio.sleep(0.001)  # a failing server answers fast: don't spin
            except (aiohttp.ClientError, TimeoutError):
                failed += 1
        final = await final_count(http)
    return requests, failed, acknowledged - final


async def final_count(http: aiohttp.ClientSession) -> int:
    """The session's counter once the server answers again (a pooled connection that predates
    the restart may fail one request more)."""
    deadline = time.monotonic() + 10
    while True:
        async with http.get("/read") as reply:
            if reply.status == 200:
                return int((await reply.json())["n"] or 0)
        if time.monotonic() > deadline:
            raise RuntimeError(f"/read still answers {reply.status} after the restart")
        await asyncio.sleep(0.05)


async def one_run(kind: str) -> Outcome:
    store = RedisProcess()
    try:
        with server(kind, store.url) as target:
            started = time.monotonic()
            clients = [client(target.base, started + SECONDS) for _ in range(CLIENTS)]
            load = asyncio.gather(*clients)
            await asyncio.sleep(KILL_AT)
            await asyncio.to_thread(store.kill)
            await asyncio.sleep(DOWN)
            await asyncio.to_thread(store.start)  # empty: nothing persisted
            results = await load
    finally:
        store.stop()
    return Outcome(*(sum(column) for column in zip(*results, strict=True)))


async def run(rounds: int = 3) -> list[Result]:
    outcomes: dict[str, list[Outcome]] = {name: [] for name in KINDS}
    for _ in range(rounds):
        for name, kind in KINDS.items():
            outcomes[name].append(await one_run(kind))
    ours, theirs = outcomes["TieredStorage"], outcomes["RedisStorage"]
    detail = "\n    ".join(
        f"{name}: " + "; ".join(outcome.line() for outcome in runs)
        for name, runs in outcomes.items()
    )
    return [
        Result(
            "GET /count, Redis SIGKILLed and restarted 3 s later: failed requests, worst run",
            max(o.failed for o in ours),
            max(o.failed for o in theirs),
            "requests",
            "ours 0",
            all(o.failed == 0 for o in ours),
            detail,
        ),
        Result(
            "GET /count, Redis SIGKILLed and restarted 3 s later: lost increments, worst run",
            max(o.lost for o in ours),
            max(o.lost for o in theirs),
            "increments",
            "ours 0",
            all(o.lost == 0 for o in ours),
        ),
    ]


if __name__ == "__main__":
    from bench.__main__ import print_table, run_async

    print_table(run_async(run()))
