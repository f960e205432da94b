"""Which Redis reads and writes in flight may still fill the memory tier: pure, no I/O.

A read-through or write-through that started before its key (or the whole tier) was invalidated
must not put the copy it carries into memory: it may be older than what invalidated it. A
`watch` taken before the call and checked by `unwatch` after it tells. Writes to tracked keys
echo back as invalidations (server-assisted tracking reports our own writes too); the guard
counts the echoes it expects, so the store can tell an echo from another replica's write. A
*sole* write (of a new random key nobody else can know yet) is told apart: its echo cannot cover
anyone else's write.

    >>> guard = WriteGuard()
    >>> token = guard.watch("s:{a}"); guard.invalidated("s:{a}"); guard.unwatch("s:{a}", token)
    False
"""

from __future__ import annotations

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
        self._echoes: dict[str, int] = {}
        # Keys whose one expected echo is of a sole write.
        self._sole: set[str] = set()

    def watch(self, key: str) -> tuple[int, int]:
        """Start a call on `key`; pass the token to `unwatch` when it ends."""
        entry = self._inflight.get(key)
        if entry is None:
            entry = self._inflight[key] = [0, 0]
        entry[0] += 1
        return self.epoch, entry[1]

    def unwatch(self, key: str, token: tuple[int, int]) -> bool:
        """End a call; True if neither the key nor the whole tier was invalidated meanwhile."""
        entry = self._inflight[key]
        entry[0] -= 1
        clean = token == (self.epoch, entry[1])
        if not entry[0]:
            del self._inflight[key]
        return clean

    def invalidated(self, key: str) -> None:
        """`key` changed elsewhere (or was deleted here): calls in flight on it are not clean."""
        entry = self._inflight.get(key)
        if entry is not None:
            entry[1] += 1

    def invalidate_all(self) -> None:
        """The whole tier was dropped or coherence changed: no call in flight is clean."""
        self.epoch += 1

    def expect_echo(self, key: str, coherent: bool, *, sole: bool = False) -> bool:
        """A write of `key` is about to be sent: True if its invalidation will echo back. A `sole`
        write is of a key nobody else can know yet (a new random id, not yet answered)."""
        prefixes = self.tracked_prefixes
        if not coherent or not prefixes or not key.startswith(prefixes):
            return False
        if len(self._echoes) >= MAX_ECHOES:
            self.forget_echoes()
        expected = self._echoes.get(key, 0)
        self._echoes[key] = expected + 1
        if sole and not expected:
            self._sole.add(key)
        else:
            self._sole.discard(key)  # two writes in flight: which echo is which is unknown
        return True

    def is_echo(self, key: str) -> bool:
        return bool(self._echoes) and key in self._echoes

    def is_sole_echo(self, key: str) -> bool:
        """Whether the next invalidation of `key` is the echo of a sole write and nothing else.
        Redis reports the keys written in one event-loop cycle at that cycle's end, with the
        replies; anyone else learns the key only after our reply, so writes it later in another
        cycle, reported in a message of its own."""
        return bool(self._sole) and key in self._sole

    def echo_arrived(self, key: str) -> None:
        """One expected echo of `key` came (or will never come: the write was not sent)."""
        left = self._echoes.pop(key, 0) - 1
        if left > 0:
            self._echoes[key] = left
        else:
            self._sole.discard(key)

    def forget_echoes(self) -> None:
        """Tracking was lost or re-established: echoes of earlier writes will not come."""
        self._echoes.clear()
        self._sole.clear()
