"""How Redis errors are classified: an outage, a refusal to write, or backpressure."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    MaxConnectionsError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from exporter.core.errors import StoreBusy, StoreTimeout, StoreUnavailable, WritesRefused
from exporter.store.redis_client import PoolBusy
from exporter.store.redis_store import RedisStore, _unavailable, refusal_reason


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ReadOnlyError("You can't write against a read only replica."), "readonly"),
        (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), "oom"),
        (ResponseError("MISCONF Redis is configured to save RDB snapshots, but..."), "misconf"),
        (AuthenticationError("Authentication required."), "noauth"),
        (ResponseError("NOREPLICAS Not enough good replicas to write."), "noreplicas"),
        (
            ResponseError("ERR Error running script: -NOREPLICAS Not enough good replicas"),
            "noreplicas",
        ),
        (ResponseError("ERR Error running script (call to f_1): -OOM command not allowed"), "oom"),
        (ResponseError("WRONGTYPE Operation against a key holding the wrong kind"), None),
        (ConnectionError("Connection refused"), None),
    ],
)
def test_refusals_are_told_apart_from_other_errors(exc: Exception, reason: str | None) -> None:
    assert refusal_reason(exc) == reason


def test_each_failure_maps_to_its_own_store_error() -> None:
    assert type(_unavailable(PoolBusy("x"))) is StoreBusy
    assert type(_unavailable(MaxConnectionsError("x"))) is StoreBusy
    assert type(_unavailable(RedisTimeoutError("x"))) is StoreTimeout
    refused = _unavailable(ReadOnlyError("x"))
    assert isinstance(refused, WritesRefused) and refused.reason == "readonly"
    down = _unavailable(ConnectionError("Error 111 connecting to 10.0.0.1:6379"))
    assert type(down) is StoreUnavailable and "10.0.0.1" not in str(down)


def _torn_connection_error() -> Exception:
    """What a command raises on a socket another task tore down (redis-py 8.2 checks the writer
    first; 8.1 failed with "'NoneType' object has no attribute 'writelines'")."""
    connection = Connection()  # never connected: no writer, as after a disconnect
    send = connection._send_packed_command([b"PING\r\n"])
    try:
        send.send(None)  # fails at its first step, before any await
    except Exception as exc:
        return exc
    raise AssertionError("expected the connection layer to fail")


def test_a_store_command_on_a_torn_down_connection_fails_as_unavailable() -> None:
    store = RedisStore(Redis(), prefix="t:", timeout=1.0)

    async def torn() -> None:
        raise _torn_connection_error()

    async def cluster_gone() -> None:
        raise RedisClusterException("Redis Cluster cannot be connected. Please provide ...")

    async def our_bug() -> None:
        raise AttributeError("'NoneType' object has no attribute 'version'")

    for failure in (torn, cluster_gone):
        with pytest.raises(StoreUnavailable):
            asyncio.run(store._call(failure()))
    with pytest.raises(AttributeError):  # our own bug: a 500 with a log line, not an outage
        asyncio.run(store._call(our_bug()))
