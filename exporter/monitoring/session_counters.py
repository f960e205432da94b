"""Per-session access counts kept in Redis, summed over every replica, for the session's life.

Nothing is written per request. The session manager already counts each session's reads and
writes in this replica's bounded `AccessStats`; `SessionCounters.pending()` diffs those counters
against what was last written, and the fleet publisher (`exporter.monitoring.fleet`) sends the
differences as one pipeline per flush (a short script updating up to 200 sessions per call:
HINCRBY, HINCRBYFLOAT, HSET, EXPIRE): one round trip every
snapshot interval, however many reads were made. A key lives as long as its session (its expiry
as the memory tier knows it, else `--session-ttl`), refreshed on every flush with activity.

    >>> from exporter.core.access_stats import AccessStats
    >>> stats = AccessStats()
    >>> stats.memory_read("s1", 0.002, 1.0)
    >>> counters = SessionCounters(stats, "sme:", lambda _: None, default_ttl=60.0)
    >>> [(d.session_id, d.memory_reads, d.other_reads) for d in counters.pending()]
    [('s1', 1, 0)]
    >>> counters.written(counters.pending())
    >>> counters.pending()
    []
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exporter.core.access_stats import AccessStats

# Sessions written per flush; more wait for the next one (a burst never makes one huge pipeline).
MAX_PER_FLUSH = 2000
FIELDS = ("memory_reads", "other_reads", "writes", "total_ms", "last_access")
# Sessions' keys fall in BUCKETS hash-tagged groups, so that one script call can update many of
# them on Redis Cluster too (a script's keys must share a slot); at most BATCH keys per call.
BUCKETS = 16
BATCH = 200
# KEYS: sessions' hashes; ARGV, six per key: memory reads, other reads, writes to add,
# milliseconds to add, the last access (epoch seconds), the TTL in seconds.
ADD_SCRIPT = """
for i, key in ipairs(KEYS) do
  local at = (i - 1) * 6
  for j, field in ipairs({'memory_reads', 'other_reads', 'writes'}) do
    if ARGV[at + j] ~= '0' then redis.call('HINCRBY', key, field, ARGV[at + j]) end
  end
  redis.call('HINCRBYFLOAT', key, 'total_ms', ARGV[at + 4])
  redis.call('HSET', key, 'last_access', ARGV[at + 5])
  redis.call('EXPIRE', key, ARGV[at + 6])
end
return #KEYS
"""
_Counts = tuple[int, int, int, float]


@dataclass(frozen=True, slots=True)
class Delta:
    """What one session gained since the last flush."""

    session_id: str
    memory_reads: int
    other_reads: int
    writes: int
    total_ms: float
    last: float  # perf_counter() of its last access
    counts: _Counts  # the totals these differences bring it to


class SessionCounters:
    """This replica's unsent differences, and reading the fleet's sums back."""

    def __init__(
        self,
        access: AccessStats,
        prefix: str,
        expires_at: Callable[[str], float | None],
        *,
        default_ttl: float,
    ) -> None:
        self.access = access
        self.prefix = prefix
        self.expires_at = expires_at
        self.default_ttl = default_ttl
        self._sent: dict[str, _Counts] = {}

    def key(self, session_id: str) -> str:
        return f"{self.prefix}{{access:{bucket(session_id)}}}:{session_id}"

    def pending(self, limit: int = MAX_PER_FLUSH) -> list[Delta]:
        """Sessions whose counters moved since they were last written (at most `limit`)."""
        deltas: list[Delta] = []
        for session_id, entry in self.access.entries.items():
            counts = (entry.memory_reads, entry.other_reads, entry.writes, entry.total_seconds)
            sent = self._sent.get(session_id, (0, 0, 0, 0.0))
            if counts == sent:
                continue
            if counts[0] < sent[0] or counts[1] < sent[1] or counts[2] < sent[2]:
                sent = (0, 0, 0, 0.0)  # forgotten and tracked again: what it has now is new
            deltas.append(
                Delta(
                    session_id,
                    counts[0] - sent[0],
                    counts[1] - sent[1],
                    counts[2] - sent[2],
                    (counts[3] - sent[3]) * 1000,
                    entry.last,
                    counts,
                )
            )
            if len(deltas) >= limit:
                break
        return deltas

    def written(self, deltas: list[Delta]) -> None:
        """Those differences are in Redis now."""
        for delta in deltas:
            self._sent[delta.session_id] = delta.counts
        if len(self._sent) > 2 * max(len(self.access.entries), 1):
            # Sessions the bounded map forgot: stop remembering what was sent for them.
            self._sent = {k: v for k, v in self._sent.items() if k in self.access.entries}

    def ttl(self, session_id: str, now: float) -> int:
        """Whole seconds the session has left (at least 1), as far as this replica knows."""
        expires_at = self.expires_at(session_id)
        remaining = expires_at - now if expires_at is not None else self.default_ttl
        return max(1, math.ceil(remaining))

    def commands(self, pipe: Any, deltas: list[Delta], now: float, wall_minus_perf: float) -> None:
        """Queue the increments of `deltas` on a redis-py pipeline: one script call per bucket
        and BATCH sessions.

        redis-py's encoding and parsing per command is the cost of a flush: for 1,000 sessions,
        about 25 ms of CPU with one call per session, 6 ms with a call per BATCH sessions of one
        bucket (`python -m bench dashboard` measures the effect on requests).
        """
        buckets: dict[int, list[Delta]] = {}
        for delta in deltas:
            buckets.setdefault(bucket(delta.session_id), []).append(delta)
        for group in buckets.values():
            for first in range(0, len(group), BATCH):
                batch = group[first : first + BATCH]
                keys = [self.key(delta.session_id) for delta in batch]
                values: list[object] = []
                for delta in batch:
                    values += (
                        delta.memory_reads,
                        delta.other_reads,
                        delta.writes,
                        f"{delta.total_ms:.6f}",
                        f"{delta.last + wall_minus_perf:.3f}",
                        self.ttl(delta.session_id, now),
                    )
                pipe.eval(ADD_SCRIPT, len(keys), *keys, *values)

    def unsent(self, session_id: str) -> _Counts:
        """This replica's counts not written yet (added to what Redis holds when read)."""
        entry = self.access.entries.get(session_id)
        if entry is None:
            return (0, 0, 0, 0.0)
        sent = self._sent.get(session_id, (0, 0, 0, 0.0))
        if entry.memory_reads < sent[0] or entry.other_reads < sent[1] or entry.writes < sent[2]:
            sent = (0, 0, 0, 0.0)
        return (
            entry.memory_reads - sent[0],
            entry.other_reads - sent[1],
            entry.writes - sent[2],
            entry.total_seconds - sent[3],
        )


def bucket(session_id: str) -> int:
    """The session's group of keys (a stable hash: every replica must agree)."""
    return zlib.crc32(session_id.encode()) % BUCKETS


def fleet_access(stored: dict[str, str], unsent: _Counts) -> dict[str, Any] | None:
    """The shape of `AccessStats.view`, summed over replicas (no max: it is not kept fleet-wide)."""
    memory = int(stored.get("memory_reads", 0)) + unsent[0]
    other = int(stored.get("other_reads", 0)) + unsent[1]
    writes = int(stored.get("writes", 0)) + unsent[2]
    total_ms = float(stored.get("total_ms", 0.0)) + unsent[3] * 1000
    reads = memory + other
    operations = reads + writes
    if not operations:
        return None
    last = stored.get("last_access")
    return {
        "reads": reads,
        "writes": writes,
        "cache": {
            "memory_hits": memory,
            "memory_misses": other,
            "hit_ratio": round(memory / reads, 4) if reads else None,
        },
        "avg_ms": round(total_ms / operations, 3),
        "max_ms": None,
        "last_access": round(float(last), 3) if last is not None else None,
    }
