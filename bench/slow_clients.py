"""`python -m bench.slow_clients PORT COUNT`: COUNT clients, from 20 loopback addresses, each
sending a request head to 127.0.0.1:PORT one byte a second, and reconnecting on its next tick
(a second later) when the server closes or refuses its connection, until terminated. Each client
costs this process one sleeping coroutine and one pending read, so the flood itself takes little
CPU from the machine."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import sys

HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100_000
ADDRESSES = 20


async def slow_connection(port: int, address: str) -> None:
    """One connection, until the server answers or closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
    ended = asyncio.ensure_future(reader.read())  # done at the server's close (after any 408)
    try:
        for byte in HEAD:
            writer.write(bytes([byte]))
            await asyncio.sleep(1.0)
            if ended.done() or writer.is_closing():
                return
    finally:
        ended.cancel()
        writer.close()


async def slow_client(port: int, address: str) -> None:
    while True:
        with contextlib.suppress(OSError):
            await slow_connection(port, address)
        await asyncio.sleep(1.0)  # 1 byte/s: the next attempt on the next tick


async def main(port: int, count: int) -> None:
    clients = [
        asyncio.create_task(slow_client(port, f"127.0.1.{n % ADDRESSES + 1}")) for n in range(count)
    ]
    await asyncio.gather(*clients)


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
