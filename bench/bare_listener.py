"""The floor under an idle replica's invalidation cost: a process that holds keys the way a
replica does and does nothing with their invalidations but parse them.

It keeps a listener (`SUBSCRIBE __redis__:invalidate`, read by an `asyncio.Protocol` feeding a
hiredis reader on uvloop, as the replica's `reply_protocol.py` does) and a tracked connection
(`CLIENT TRACKING on REDIRECT <listener> OPTIN`) on which it registers keys with
`CLIENT CACHING yes` + `GET`. Each message then costs it an event-loop wakeup, a `recv` and a
parse: what the replica pays before its own work (dropping the copy, counting it).

Driven by lines on stdin: `hold <key> <key> ...` answers `held` once every key is registered.

    python -m bench.bare_listener redis://127.0.0.1:6379
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any
from urllib.parse import urlsplit

import hiredis
import uvloop


class Connection(asyncio.Protocol):
    """A Redis connection read by callback. Once `subscribed`, replies are only counted."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.replies: asyncio.Queue[Any] = asyncio.Queue()
        self.subscribed = False
        self.messages = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        reply = self.reader.gets()
        while reply is not False:
            if self.subscribed:
                self.messages += 1
            else:
                self.replies.put_nowait(reply)
            reply = self.reader.gets()

    async def call(self, *args: str | int) -> Any:
        command: tuple[Any, ...] = args  # hiredis's stub types a one-item tuple
        self.transport.write(hiredis.pack_command(command))
        return await self.replies.get()


async def connect(url: str) -> Connection:
    address = urlsplit(url)
    _, connection = await asyncio.get_running_loop().create_connection(
        Connection, address.hostname or "127.0.0.1", address.port or 6379
    )
    return connection


async def main(url: str) -> None:
    listener, tracked = await connect(url), await connect(url)
    listener_id = await listener.call("CLIENT", "ID")
    await listener.call("SUBSCRIBE", "__redis__:invalidate")
    listener.subscribed = True
    await tracked.call("CLIENT", "TRACKING", "on", "REDIRECT", listener_id, "OPTIN")
    stdin = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin
    )
    print("ready", flush=True)
    while line := (await stdin.readline()).decode().split():
        if line[0] == "hold":
            for key in line[1:]:
                await tracked.call("CLIENT", "CACHING", "yes")
                await tracked.call("GET", key)
            print("held", flush=True)


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1]))
