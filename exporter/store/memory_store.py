"""The memory tier: an LRU with per-entry expiry, bounded by entries and by bytes.

A plain OrderedDict with a monotonic deadline per entry (≈ 40 ns per hit, where a TTLCache costs
over a microsecond). Expired entries are dropped when read and by `sweep()`, which pops a heap of
deadlines so it never scans the whole tier. A key prefix may get a byte budget of its own
(`set_budget`): its entries then evict each other, oldest first, instead of evicting the rest of
the tier (large Figma images must not push sessions out). Everything here is synchronous and does
no I/O.

Some entries must never be evicted: sessions in memory-only mode (the tier holds the only copy)
and, with Redis, writes journalled during an outage. Those are *pinned*, by key prefix
(`pinned_prefixes`) or one key at a time (`pin`/`unpin`). A put that fits only by evicting pinned
entries raises `StoreFull` (507) and leaves the tier as it was; unpinned entries (Figma
responses) are still evicted, oldest first, to make room.

    >>> tier = MemoryStore(max_entries=2, max_bytes=1024)
    >>> tier.put("a", StoredValue(b"1", 1, time.time() + 60))
    >>> tier.get("a").payload
    b'1'
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

from exporter.core.acyclic import hold, untrack
from exporter.core.errors import StoreFull
from exporter.store.contract import StoredValue

ExpiryListener = Callable[[str, StoredValue], None]
_Entry = tuple[StoredValue, float, int, str | None]

_monotonic = time.monotonic


class MemoryStore:
    """LRU + TTL. `on_expire(key, value)` is called for each entry found expired (read or sweep)."""

    def __init__(
        self,
        max_entries: int,
        max_bytes: int,
        *,
        counted_prefixes: Iterable[str] = (),
        on_expire: ExpiryListener | None = None,
        on_evict: Callable[[int], None] | None = None,
        pinned_prefixes: Iterable[str] = (),
        entry_overhead: int = 0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.max_entries = max_entries
        # What `expires_at` is measured against: the tiered store hands its fleet clock here
        # (`exporter.core.clock`), so expiry follows Redis's time, not this host's wall clock.
        self.wall = wall
        # Counted per entry on top of its key and payload: store.ENTRY_OVERHEAD makes `bytes`
        # what the process spends (0 counts the characters only).
        self.entry_overhead = entry_overhead
        self.max_bytes = max_bytes
        self.on_expire = on_expire
        self.on_evict = on_evict
        # key -> (value, monotonic deadline, size, counted prefix): a tuple is the cheapest record.
        self._data: OrderedDict[str, _Entry] = OrderedDict()
        self._deadlines: list[tuple[float, str]] = []
        # Untracked, like every entry, so that a full collection skips the whole tier instead of
        # visiting each of its entries (`exporter.core.acyclic`).
        untrack(self._data)
        untrack(self._deadlines)
        self._prefix_counts = dict.fromkeys(counted_prefixes, 0)
        self._prefix_bytes = dict.fromkeys(counted_prefixes, 0)
        # Budgeted prefix -> its byte limit, and its entries in insertion order (stale pairs are
        # skipped when popped: cheaper than keeping the queue exact on every delete).
        self._budgets: dict[str, int] = {}
        self._budget_order: dict[str, deque[tuple[str, _Entry]]] = {}
        self.bytes = 0
        self.evictions = 0
        self.pinned_prefixes = tuple(pinned_prefixes)
        self._pinned_keys: set[str] = set()
        self.pinned_entries = 0  # held entries that may not be evicted, and their bytes
        self.pinned_bytes = 0
        self.rejected = 0  # puts refused with StoreFull

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def listen(
        self, on_expire: ExpiryListener, on_evict: Callable[[int], None] | None = None
    ) -> None:
        """Hand the expiry (and eviction) callbacks to the tier's owner; one owner only."""
        if self.on_expire is not None or self.on_evict is not None:
            raise ValueError("this memory tier already reports to another owner")
        self.on_expire, self.on_evict = on_expire, on_evict

    def get(self, key: str) -> StoredValue | None:
        """The live value for `key` (marking it recently used), or None."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[1] <= _monotonic():
            self._expire(key)
            return None
        self._data.move_to_end(key)
        return entry[0]

    def peek(self, key: str) -> StoredValue | None:
        """The value held for `key`, live or not, without touching LRU order or expiry."""
        entry = self._data.get(key)
        return None if entry is None else entry[0]

    def put(self, key: str, value: StoredValue, max_ttl: float | None = None) -> None:
        """Hold `value` until its expiry (or `max_ttl` s, if sooner); evict to stay in bounds."""
        ttl = value.expires_at - self.wall()
        if max_ttl is not None and max_ttl < ttl:
            ttl = max_ttl
        data = self._data
        size = len(key) + len(value.payload) + self.entry_overhead
        pinned = self.is_pinned(key)
        if pinned and ttl > 0:
            self._check_room(key, size)
        old = data.pop(key, None)
        if old is not None:
            self._forget(key, old)
        prefix = self._prefix_of(key)
        if ttl <= 0 or size > self._budgets.get(prefix or "", self.max_bytes):
            return
        deadline = _monotonic() + ttl
        entry = (value, deadline, size, prefix)
        hold(data, key, entry, value)  # untracked: cannot form cycles (see sessions.acyclic)
        self.bytes += size
        if pinned:
            self.pinned_entries += 1
            self.pinned_bytes += size
        if prefix is not None:
            self._prefix_counts[prefix] += 1
            self._prefix_bytes[prefix] += size
            if prefix in self._budgets:
                self._evict_within(prefix, key, entry)
        heapq.heappush(self._deadlines, (deadline, key))
        if len(data) > self.max_entries or self.bytes > self.max_bytes:
            self._evict()
        if len(self._deadlines) > 2 * len(data) + 1024:
            self._rebuild_deadlines()

    def pop(self, key: str) -> StoredValue | None:
        """Remove `key`; return its value if it was held and live."""
        entry = self._data.pop(key, None)
        if entry is None:
            return None
        self._forget(key, entry)
        return None if entry[1] <= _monotonic() else entry[0]

    def is_pinned(self, key: str) -> bool:
        return key in self._pinned_keys or key.startswith(self.pinned_prefixes)

    def pin(self, key: str) -> None:
        """Never evict `key` (held now or put later) until `unpin(key)`; expiry still applies."""
        if self.is_pinned(key):
            return
        self._pinned_keys.add(key)
        entry = self._data.get(key)
        if entry is not None:
            self.pinned_entries += 1
            self.pinned_bytes += entry[2]

    def unpin(self, key: str) -> None:
        """Let `key` be evicted again (a no-op for keys pinned by prefix)."""
        if key not in self._pinned_keys:
            return
        self._pinned_keys.discard(key)
        entry = self._data.get(key)
        if entry is not None and not self.is_pinned(key):
            self.pinned_entries -= 1
            self.pinned_bytes -= entry[2]

    def fits(self, key: str, size: int) -> bool:
        """Whether a pinned entry of `size` counted bytes under `key` would be accepted now."""
        old = self._data.get(key)
        held = old is not None and self.is_pinned(key)
        entries = self.pinned_entries + (0 if held else 1)
        nbytes = self.pinned_bytes + size - (old[2] if held and old is not None else 0)
        return entries <= self.max_entries and nbytes <= self.max_bytes

    def _check_room(self, key: str, size: int) -> None:
        if self.fits(key, size):
            return
        self.rejected += 1
        raise StoreFull(
            f"memory store full: {self.pinned_entries} entries ({self.pinned_bytes} bytes) it "
            f"may not evict, limits {self.max_entries} entries / {self.max_bytes} bytes"
        )

    def clear(self, prefix: str | None = None, *, keep_pinned: bool = False) -> int:
        """Drop every entry (or those whose key starts with `prefix`), sparing pinned ones if
        `keep_pinned`; return how many were dropped."""
        if keep_pinned and self.pinned_entries:
            keys = [
                key
                for key in self._data
                if (prefix is None or key.startswith(prefix)) and not self.is_pinned(key)
            ]
            for key in keys:
                self._forget(key, self._data.pop(key))
            return len(keys)
        if prefix is None:
            count = len(self._data)
            self._data.clear()
            self._deadlines.clear()
            self.bytes = 0
            self.pinned_entries = self.pinned_bytes = 0
            self._prefix_counts = dict.fromkeys(self._prefix_counts, 0)
            self._prefix_bytes = dict.fromkeys(self._prefix_bytes, 0)
            for order in self._budget_order.values():
                order.clear()
            return count
        keys = [key for key in self._data if key.startswith(prefix)]
        for key in keys:
            self._forget(key, self._data.pop(key))
        return len(keys)

    def sweep(self, limit: int = 10_000) -> int:
        """Drop up to `limit` expired entries, earliest deadline first; return how many."""
        now = _monotonic()
        removed = 0
        heap = self._deadlines
        while heap and heap[0][0] <= now and removed < limit:
            deadline, key = heapq.heappop(heap)
            entry = self._data.get(key)
            if entry is not None and entry[1] == deadline:
                self._expire(key)
                removed += 1
        return removed

    def set_budget(self, prefix: str, max_bytes: int) -> None:
        """Let entries under `prefix` hold at most `max_bytes`; over it they evict each other."""
        self._prefix_counts.setdefault(prefix, 0)
        self._prefix_bytes.setdefault(prefix, 0)
        self._budgets[prefix] = max_bytes
        self._budget_order[prefix] = deque()
        for key, entry in list(self._data.items()):  # entries held before: account for them now
            if entry[3] is None and key.startswith(prefix):
                entry = (*entry[:3], prefix)
                hold(self._data, key, entry, entry[0])
                self._prefix_counts[prefix] += 1
                self._prefix_bytes[prefix] += entry[2]
            if entry[3] == prefix:
                self._budget_order[prefix].append((key, entry))

    def budget_bytes(self, prefix: str) -> int:
        """Bytes held under a budgeted or counted prefix (0 for any other)."""
        return self._prefix_bytes.get(prefix, 0)

    def count(self, prefix: str) -> int:
        """Entries under one of the `counted_prefixes` given at construction (expired ones included
        until read or swept)."""
        return self._prefix_counts[prefix]

    def keys(self) -> list[str]:
        return list(self._data)

    def _expire(self, key: str) -> None:
        entry = self._data.pop(key)
        self._forget(key, entry)
        if self.on_expire is not None:
            self.on_expire(key, entry[0])

    def _forget(self, key: str, entry: _Entry) -> None:
        """Account for an entry already taken out of the dict."""
        self.bytes -= entry[2]
        if self.is_pinned(key):
            self.pinned_entries -= 1
            self.pinned_bytes -= entry[2]
        if entry[3] is not None:
            self._prefix_counts[entry[3]] -= 1
            self._prefix_bytes[entry[3]] -= entry[2]

    def _evict(self) -> None:
        """Evict the least recently used unpinned entries until within bounds. Pinned ones met on
        the way are moved to the back (their order does not matter: they are never evicted), so
        a tier full of sessions does not rescan them on every put."""
        data = self._data
        evicted = 0
        rotations = len(data)
        while data and (len(data) > self.max_entries or self.bytes > self.max_bytes):
            key = next(iter(data))
            if self.is_pinned(key):
                if rotations == 0:
                    break  # only pinned entries left: put checked they fit
                rotations -= 1
                data.move_to_end(key)
                continue
            self._forget(key, data.pop(key))
            evicted += 1
        self._count_evictions(evicted)

    def _evict_within(self, prefix: str, key: str, entry: _Entry) -> None:
        """Queue a budgeted prefix's new entry; evict that prefix's oldest while over budget."""
        order = self._budget_order[prefix]
        order.append((key, entry))
        data = self._data
        evicted = 0
        while self._prefix_bytes[prefix] > self._budgets[prefix] and order:
            old_key, old_entry = order.popleft()
            # `==`, not `is`: compiled with mypyc, an entry tuple is a new object each time it is
            # read back out of the dict.
            if data.get(old_key) == old_entry and not self.is_pinned(old_key):  # else stale
                del data[old_key]
                self._forget(old_key, old_entry)
                evicted += 1
        if len(order) > 2 * self._prefix_counts[prefix] + 1024:
            order_live = [(k, e) for k, e in order if data.get(k) == e]
            order.clear()
            order.extend(order_live)
        self._count_evictions(evicted)

    def _count_evictions(self, evicted: int) -> None:
        self.evictions += evicted
        if evicted and self.on_evict is not None:
            self.on_evict(evicted)

    def _prefix_of(self, key: str) -> str | None:
        for prefix in self._prefix_counts:
            if key.startswith(prefix):
                return prefix
        return None

    def _rebuild_deadlines(self) -> None:
        self._deadlines = [(entry[1], key) for key, entry in self._data.items()]
        untrack(self._deadlines)
        heapq.heapify(self._deadlines)
