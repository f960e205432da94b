"""`python -m bench.slow_clients PORT COUNT`: keep COUNT connections to 127.0.0.1:PORT sending a
request head one byte a second, from 20 loopback addresses, each reopened when the server closes
it (as a slow-loris attacker does), until terminated."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import sys

HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100_000
ADDRESSES = 20


async def slow_client(port: int, address: str) -> None:
    while True:
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(address, 0)
            )
        except OSError:
            await asyncio.sleep(0.5)
            continue
        try:
            for byte in HEAD:
                writer.write(bytes([byte]))
                await writer.drain()
                try:
                    await asyncio.wait_for(reader.read(4096), timeout=1.0)
                except TimeoutError:
                    continue
                break  # answered or closed: reconnect
        except OSError:
            pass
        finally:
            writer.close()


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
