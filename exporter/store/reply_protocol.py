"""Read a Redis connection by callback: the transport hands each chunk to hiredis, and every
complete reply goes to a function within the same call.

The invalidation listener and the tracking lanes (coherence.py, tracking.py) each keep one
connection and read it all the time. Through redis-py's `read_response` each reply costs a wakeup
of the reading task, a StreamReader read and a few coroutine frames, and most invalidations come
one per packet: that was most of what a held key's invalidation cost the replica. redis-py has no
callback reader for asyncio, so this part is written by hand. The connection stays redis-py's:
its handshake (AUTH, TLS, SELECT, CLIENT SETNAME) and its hiredis reader, set up with redis-py's
error classes (an `OOM` reply is still an `OutOfMemoryError`). Once the connection is set up,
`take_over` hands its transport to a `ReplyProtocol`.

    protocol = take_over(connection, on_reply=print)
    protocol.write([b"*1\\r\\n$4\\r\\nPING\\r\\n"])
    await protocol.ended  # the reason it ended (the connection closed, or `on_reply` raised)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from redis._parsers.hiredis import NOT_ENOUGH_DATA
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError

OnReply = Callable[[Any], None]


class ReplyProtocol(asyncio.Protocol):
    """Feeds what the socket receives to `parser` and each complete reply to `on_reply`."""

    def __init__(self, parser: Any, on_reply: OnReply) -> None:
        self.parser = parser  # a hiredis.Reader
        self.on_reply = on_reply
        self.heard = time.monotonic()  # when the server last sent anything
        # Why the connection ended, once it has: never an exception set on the future, so that
        # nobody has to retrieve it.
        self.ended: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        # Not typed asyncio.Transport: uvloop's transports do not derive from it.
        self.transport: Any = None
        self._unsent: list[bytes] | None = None  # written, to go out at the loop's next turn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.heard = time.monotonic()
        parser = self.parser
        parser.feed(data)
        try:
            reply = parser.gets()
            while reply is not NOT_ENOUGH_DATA:  # redis-py's reader says so, not with False
                self.on_reply(reply)
                reply = parser.gets()
        except Exception as exc:  # a protocol error, or the callback's: the connection is done
            self.end(exc)

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.end(exc or RedisConnectionError("the connection closed"))

    def write(self, chunks: Iterable[bytes]) -> None:
        """Send packed commands, with whatever else is written before the event loop's next
        turn: many requests handled in one turn each write to the lane, and one `send` for all
        of them costs less than one each (for us, and for Redis's reads). The commands go out
        before the loop waits for anything, so no caller waits longer for it."""
        if self.transport is None or self.transport.is_closing():
            raise RedisConnectionError("the connection closed")
        if self._unsent is None:
            self._unsent = []
            asyncio.get_running_loop().call_soon(self._send)
        self._unsent.extend(chunks)

    def _send(self) -> None:
        chunks, self._unsent = self._unsent or [], None
        if not self.transport.is_closing():  # else connection_lost ends every caller
            self.transport.writelines(chunks)

    def end(self, reason: BaseException) -> None:
        if not self.ended.done():
            self.ended.set_result(reason)
        if self.transport is not None:
            self.transport.close()


def take_over(connection: AbstractConnection, on_reply: OnReply) -> ReplyProtocol:
    """Hand `connection`'s transport, and its reader with whatever it holds unread, to a new
    `ReplyProtocol`. From then on only the protocol reads it: not the connection's methods."""
    writer, stream = connection._writer, connection._reader
    parser = getattr(connection._parser, "_reader", None)  # redis-py's hiredis.Reader
    if writer is None or stream is None:
        raise RedisConnectionError("not connected")
    if parser is None:
        raise RuntimeError("coherence needs hiredis (redis[hiredis])")
    transport = writer.transport
    protocol = ReplyProtocol(parser, on_reply)
    protocol.connection_made(transport)
    transport.set_protocol(protocol)
    buffered: bytearray = stream._buffer  # type: ignore[attr-defined]  # read, not yet parsed
    unread = bytes(buffered)
    buffered.clear()
    protocol.data_received(unread)  # also delivers replies the parser already holds
    if stream.at_eof() or transport.is_closing():
        protocol.connection_lost(None)
    return protocol
