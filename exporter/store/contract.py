"""The store contract: values, their wire encoding, and the status a store reports.

Every value carries a `version` (nanoseconds of the write on the fleet clock, a hybrid logical
clock: newer wins on replay) and an absolute `expires_at` (Redis's time, see `exporter.core.clock`);
both travel with the payload into Redis so that any replica can compare versions
atomically and derive the remaining lifetime without a second round trip:

    >>> value = StoredValue(b'{"a":1}', version=5, expires_at=1700000000.5)
    >>> decode_value(encode_value(value)).payload
    b'{"a":1}'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from exporter.core.errors import UnreadableValue

# One lookup in one tier: the tiered store reports it so managers count hits and misses by tier.
CacheRecorder = Callable[[str, bool], None]

KIND_VALUE = b"s"
KIND_TOMBSTONE = b"d"


@dataclass(slots=True)
class StoredValue:
    """One stored value. `decoded` is filled once by its reader and kept by the memory tier,
    so a memory hit never decodes again; callers must treat it as read-only."""

    payload: bytes
    version: int
    expires_at: float
    decoded: object | None = None

    def remaining(self, now: float) -> float:
        """Seconds until expiry at `now` (the fleet clock's: `exporter.core.clock`); negative once
        expired."""
        return self.expires_at - now

    @property
    def size(self) -> int:
        return len(self.payload)


def right_sized(raw: bytes) -> bytes:
    """A copy of `raw` in an allocation of its own length. orjson returns bytes that keep its
    whole working buffer (about 8 KiB, whatever the length): kept as is, a 1 KiB session would
    cost 9 KiB."""
    return bytes(memoryview(raw))


# What holding one entry costs besides its key and payload characters (`MemoryStore`'s
# `entry_overhead`), measured with tracemalloc for sessions (bench/memory_bench.py): the str and
# bytes headers, the StoredValue, the decoded Session with its id and formatted timestamps, the
# tier's record tuple, its OrderedDict slot and deadline heap entry, the floats and ints.
ENTRY_OVERHEAD = 800
# A decoded object other than a Session (a cached Figma document) is not counted: those entries
# are evictable, and under a budget of their own.


@dataclass(frozen=True, slots=True)
class ReplayItem:
    """One journalled write: a value to put, or (value None) a delete made at `version`."""

    key: str
    version: int
    expires_at: float
    value: StoredValue | None


def encode_value(value: StoredValue, kind: bytes = KIND_VALUE) -> bytes:
    """`<version>:<expires_ms>:<kind><payload>` — one string, so a read is one GET."""
    return b"%d:%d:%s%s" % (value.version, expires_ms(value.expires_at), kind, value.payload)


def decode_value(raw: bytes) -> StoredValue | None:
    """The value held in `raw`, or None for a tombstone (a delete remembered for replay);
    UnreadableValue("header") for bytes we did not write (empty, another program's format).

    >>> try:
    ...     decode_value(b"")
    ... except UnreadableValue as exc:
    ...     print(exc.cause)
    header
    """
    parts = raw.split(b":", 2)
    if len(parts) != 3 or parts[2][:1] not in (KIND_VALUE, KIND_TOMBSTONE):
        raise UnreadableValue("header", "not <version>:<expires_ms>:<kind>")
    version, expires, rest = parts
    try:
        stamps = int(version), int(expires) / 1000
    except ValueError:
        raise UnreadableValue("header", "version or expiry is not a number") from None
    if rest[:1] == KIND_TOMBSTONE:
        return None
    return StoredValue(rest[1:], *stamps)


def expires_ms(expires_at: float) -> int:
    return int(expires_at * 1000)


@dataclass(slots=True)
class StoreStatus:
    """What the tiered store reports to the JSON API, health checks and gauges."""

    redis_configured: bool
    redis_connected: bool
    redis_latency_ms: float | None
    breaker_state: str
    fallback_active: bool
    fallback_since: float | None
    replay_pending: int
    replay_max: int
    replayed: int
    replay_dropped: int
    failovers: int
    writes_refused: str | None
    writes_refused_since: float | None
    memory_entries: int
    memory_bytes: int
    memory_max_entries: int
    memory_max_bytes: int
    evictions: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
