"""The callback reader of the listener and the lanes (`reply_protocol`), on a real redis-server:
a connection redis-py set up, then handed over with whatever it had read and not parsed. Each
test runs on asyncio's own loop and on uvloop (what the command line uses when installed: its
transports are not asyncio's classes)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvloop
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from exporter.store.reply_protocol import ReplyProtocol, take_over

LOOPS = {"asyncio": asyncio.run, "uvloop": uvloop.run}


async def connected(redis_url: str) -> Connection:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    connection = Connection(host="127.0.0.1", port=port, protocol=2)
    await connection.connect()  # type: ignore[no-untyped-call]
    return connection


def packed(connection: Connection, *commands: tuple[Any, ...]) -> list[bytes]:
    return connection.pack_commands(commands)


async def replies(received: list[Any], count: int) -> list[Any]:
    async with asyncio.timeout(5):
        while len(received) < count:
            await asyncio.sleep(0.001)
    return received


async def replies_arrive_in_order_with_redis_pys_error_classes(redis_url: str) -> None:
    connection = await connected(redis_url)
    received: list[Any] = []
    protocol = take_over(connection, received.append)
    big = b"x" * 300_000  # many chunks: a reply split across reads is parsed whole
    protocol.write(
        packed(
            connection,
            ("SET", "rp:k", big),
            ("GET", "rp:k"),
            ("EVALSHA", "0" * 40, 0),  # redis-py's class for NOSCRIPT, not a bare error
        )
    )
    ok, value, error = await replies(received, 3)
    assert (ok, value) == (b"OK", big)
    assert isinstance(error, NoScriptError)
    await connection.disconnect(nowait=True)


async def what_the_connection_read_before_the_hand_over_is_delivered(redis_url: str) -> None:
    connection = await connected(redis_url)
    await connection.send_packed_command(packed(connection, ("PING",), ("ECHO", "after")))
    assert await connection.read_response() == b"PONG"  # the ECHO's reply may be read already
    await asyncio.sleep(0.05)
    received: list[Any] = []
    take_over(connection, received.append)
    assert await replies(received, 1) == [b"after"]
    await connection.disconnect(nowait=True)


async def a_closed_connection_or_a_failing_callback_ends_it(redis_url: str) -> None:
    connection = await connected(redis_url)
    await connection.send_command("CLIENT", "ID")
    client_id = await connection.read_response()
    protocol = take_over(connection, lambda reply: None)
    await Redis.from_url(redis_url).client_kill_filter(_id=client_id)
    async with asyncio.timeout(5):
        assert "closed" in str(await protocol.ended)
    with pytest.raises(RedisConnectionError):
        protocol.write(packed(connection, ("PING",)))

    connection = await connected(redis_url)

    def fails(reply: Any) -> None:
        raise ValueError("a bug in the callback")

    protocol = take_over(connection, fails)
    protocol.write(packed(connection, ("PING",)))
    async with asyncio.timeout(5):
        assert isinstance(await protocol.ended, ValueError)
    assert isinstance(protocol, ReplyProtocol) and protocol.transport is not None
    assert protocol.transport.is_closing()


@pytest.mark.parametrize("loop", LOOPS)
def test_replies_arrive_in_order_with_redis_pys_error_classes(redis_url: str, loop: str) -> None:
    LOOPS[loop](replies_arrive_in_order_with_redis_pys_error_classes(redis_url))


@pytest.mark.parametrize("loop", LOOPS)
def test_what_the_connection_read_before_the_hand_over_is_delivered(
    redis_url: str, loop: str
) -> None:
    LOOPS[loop](what_the_connection_read_before_the_hand_over_is_delivered(redis_url))


@pytest.mark.parametrize("loop", LOOPS)
def test_a_closed_connection_or_a_failing_callback_ends_it(redis_url: str, loop: str) -> None:
    LOOPS[loop](a_closed_connection_or_a_failing_callback_ends_it(redis_url))
