"""How Redis errors are classified: an outage, a refusal to write, or backpressure."""

from __future__ import annotations

import pytest
from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    MaxConnectionsError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from exporter.errors import StoreBusy, StoreTimeout, StoreUnavailable, WritesRefused
from exporter.sessions.redis_client import PoolBusy
from exporter.sessions.redis_store import _unavailable, refusal_reason


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ReadOnlyError("You can't write against a read only replica."), "readonly"),
        (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), "oom"),
        (ResponseError("MISCONF Redis is configured to save RDB snapshots, but..."), "misconf"),
        (AuthenticationError("Authentication required."), "noauth"),
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
