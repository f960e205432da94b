"""A connection to the Sentinel master checks, once connected, that the server is still the one
Sentinel names (`redis_client._check_master`), on a real redis-server (a master)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from exporter.store.redis_client import _check_master
from exporter.store.sentinel_view import MasterView


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
