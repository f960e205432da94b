"""A connection to the Sentinel master checks, once connected, that the server is still the one
Sentinel names (`redis_client._check_master`), and the pool hands out only connections to it
(`MasterPool`), on real redis-servers (masters; the sentinels' answers are given)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from exporter.store.redis_client import MasterConnection, MasterPool, _check_master
from exporter.store.sentinel_view import MasterView
from tests.support.redis_server import RedisServer


async def test_a_switch_announced_while_connecting_refuses_the_old_master(redis_url: str) -> None:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    address = ("127.0.0.1", port)
    view = MasterView()
    connection = Connection(host="127.0.0.1", port=port, protocol=2)
    pool = SimpleNamespace(sentinel_manager=SimpleNamespace(view=view))
    connection.connection_pool = pool  # type: ignore[attr-defined]  # as SentinelManagedConnection
    await connection.connect()  # type: ignore[no-untyped-call]
    view.current = address  # what the sentinels named
    await _check_master(connection, address)
    assert connection.is_connected
    view.announced(("127.0.0.1", port + 1))  # a switch heard meanwhile
    with pytest.raises(RedisConnectionError, match="switched the master"):
        await _check_master(connection, address)
    assert not connection.is_connected


class Sentinels:
    """What `MasterPool` asks of the sentinels: the current decision, and the master's address."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.view = MasterView()
        self.view.current = self.address = address

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        self.view.current = self.address
        return self.address


async def test_a_pooled_connection_to_a_server_no_longer_the_master_reconnects(
    redis_server: RedisServer,
) -> None:
    redis_server.ensure_running()
    new = RedisServer().start()
    try:
        old_address, new_address = ("127.0.0.1", redis_server.port), ("127.0.0.1", new.port)
        sentinels = Sentinels(old_address)
        pool = MasterPool("sessions", sentinels, connection_class=MasterConnection)  # type: ignore[no-untyped-call]
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        assert (connection.host, connection.port) == old_address
        await pool.release(connection)
        sentinels.address = new_address  # a switch: the old connection stays in the pool
        sentinels.view.announced(new_address)
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        assert (connection.host, connection.port) == new_address and connection.is_connected
        await pool.release(connection)
        await pool.disconnect()
    finally:
        new.stop()
