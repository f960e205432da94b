"""Open dashboards, as the benchmark's load: `python -m bench.dashboard_clients BASE N`.

Each of the N clients does what the dashboard does when it opens (one fetch of realtime,
health-check, persistence and the fleet view), then holds the event stream open and reads it,
like an EventSource. Prints `ready` once every stream delivered its first message, then runs
until terminated. A process of its own, so its CPU is not counted as the server's.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp

API = "/api/session-metrics"
FIRST = (
    f"{API}/realtime",
    f"{API}/health-check",
    f"{API}/persistence",
    f"{API}/realtime?scope=fleet",
)


async def dashboard(http: aiohttp.ClientSession, base: str, ready: asyncio.Queue[None]) -> None:
    for path in FIRST:
        async with http.get(base + path) as response:
            await response.read()
    async with http.get(
        base + f"{API}/stream", timeout=aiohttp.ClientTimeout(total=None)
    ) as stream:
        first = True
        async for _ in stream.content.iter_any():
            if first:
                await ready.put(None)
                first = False


async def main(base: str, count: int) -> None:
    ready: asyncio.Queue[None] = asyncio.Queue()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        tasks = [asyncio.create_task(dashboard(http, base, ready)) for _ in range(count)]
        for _ in range(count):
            await ready.get()
        print("ready", flush=True)
        await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
