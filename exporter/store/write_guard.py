"""Which Redis reads and writes in flight may still fill the memory tier: pure, no I/O.

A read-through or write-through that started before its key (or the whole tier) was invalidated
must not put the copy it carries into memory: it may be older than what invalidated it. A
`watch` taken before the call and checked by `unwatch` after it tells. A write of a key this
replica holds may echo back as an invalidation: Redis tracks the key for the connection that
read it, and NOLOOP spares only the connection that writes (see tracking.py). The guard counts
the echoes that may come, so the store checks such an invalidation (one GET) instead of taking
it for another replica's write. A key this replica does not hold (a new session) cannot echo.

    >>> guard = WriteGuard()
    >>> token = guard.watch("s:{a}"); guard.invalidated("s:{a}"); guard.unwatch("s:{a}", token)
    False
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

# Expected echoes kept at most: if they are lost somehow, misreading one only costs a re-read.
MAX_ECHOES = 100_000


class WriteGuard:
    def __init__(self, tracked_prefixes: tuple[str, ...] = ()) -> None:
        # Bumped when the whole tier is dropped or coherence changes.
        self.epoch = 0
        # Keys under these (logical) prefixes echo back when written (the coherence tracks them).
        self.tracked_prefixes = tracked_prefixes
        # key -> [calls in flight, invalidations seen meanwhile]
        self._inflight: dict[str, list[int]] = {}
        self._deleting: dict[str, int] = {}  # key -> deletes of it under way here
        self._echoes: dict[str, int] = {}

    def watch(self, key: str) -> tuple[int, int]:
        """Start a call on `key`; pass the token to `unwatch` when it ends."""
        entry = self._inflight.get(key)
        if entry is None:
            entry = self._inflight[key] = [0, 0]
        entry[0] += 1
        return self.epoch, entry[1]

    def unwatch(self, key: str, token: tuple[int, int]) -> bool:
        """End a call; True if neither the key nor the whole tier was invalidated meanwhile, and
        no delete of the key is under way."""
        entry = self._inflight[key]
        entry[0] -= 1
        clean = token == (self.epoch, entry[1]) and key not in self._deleting
        if not entry[0]:
            del self._inflight[key]
        return clean

    def invalidated(self, key: str) -> None:
        """`key` changed elsewhere (or was deleted here): calls in flight on it are not clean."""
        entry = self._inflight.get(key)
        if entry is not None:
            entry[1] += 1

    @contextlib.contextmanager
    def deleting(self, key: str) -> Iterator[None]:
        """A delete of `key` under way here. A read that ends before it is done may carry what
        Redis held before it, and one that began before it certainly may: neither fills memory
        (seed 32 round 22 of the torture run: a read begun while a journalled delete was on its
        way to the disk put the old value back in memory, served after the delete was
        acknowledged and re-seeded after Redis lost its data)."""
        self._deleting[key] = self._deleting.get(key, 0) + 1
        self.invalidated(key)
        try:
            yield
        finally:
            left = self._deleting.pop(key) - 1
            if left:
                self._deleting[key] = left
            self.invalidated(key)  # a read under way since began before the delete ended

    def invalidate_all(self) -> None:
        """The whole tier was dropped or coherence changed: no call in flight is clean."""
        self.epoch += 1

    def expect_echo(self, key: str, coherent: bool, *, held: bool = True) -> bool:
        """A write of `key` is about to be sent: True if its invalidation may echo back. Only
        a key this replica `held` can: Redis tracks it for one of our connections, perhaps not
        the one that writes. An echo that does not come (the same connection, NOLOOP) leaves an
        expectation that costs one check of a later invalidation of the key, never a stale read."""
        prefixes = self.tracked_prefixes
        if not coherent or not held or not prefixes or not key.startswith(prefixes):
            return False
        if len(self._echoes) >= MAX_ECHOES:
            self.forget_echoes()
        self._echoes[key] = self._echoes.get(key, 0) + 1
        return True

    def is_echo(self, key: str) -> bool:
        return bool(self._echoes) and key in self._echoes

    def echo_arrived(self, key: str) -> None:
        """One expected echo of `key` came (or will never come: the write was not sent)."""
        left = self._echoes.pop(key, 0) - 1
        if left > 0:
            self._echoes[key] = left

    def forget_echoes(self) -> None:
        """Tracking was lost or re-established: echoes of earlier writes will not come."""
        self._echoes.clear()
