"""Basic-auth password checks: bcrypt on a thread of its own, bounded, outcomes remembered.

    checker = PasswordChecker()
    ok = await checker.check("prometheus", b"password", users.get("prometheus"), dummy)

Why a thread of its own: one bcrypt check at cost 12 is about 250 ms of CPU. On asyncio's default
executor the checks queued with the journal's writes (`asyncio.to_thread`), so 32 connections
sending wrong passwords held acknowledged writes for seconds. One worker keeps bcrypt to one core
whatever arrives, at the lowest CPU priority (on Linux a thread has its own nice value), so that
where cores are scarce the event loop and the journal run first; at most `max_pending` checks
wait for it, and a check that does not fit is refused (`ChecksBusy`, answered 503) without hashing
anything.

Outcomes, right and wrong, are remembered under a digest of user, hash and password (never the
password itself), in two bounded maps, so that a flood of wrong passwords cannot push the right
ones out: Prometheus sends the same login on every scrape, and repeating one wrong password costs
nothing. Identical checks in flight share one bcrypt run.

A user name that is not configured is checked against `dummy_hash(...)`, a hash of the same cost
as the configured ones, so it costs exactly what a wrong password costs (no user-name oracle).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import bcrypt

# bcrypt only ever uses the first 72 bytes of a password: Go's x/crypto/bcrypt (what the
# exporter-toolkit and Prometheus use) and htpasswd compare exactly those. bcrypt 5 raises on
# longer input instead, so the check truncates, and the same login works here as there.
BCRYPT_MAX_BYTES = 72
DEFAULT_COST = 10
MAX_PENDING = 32
ACCEPTED_REMEMBERED = 256
REFUSED_REMEMBERED = 1024


LOWEST_PRIORITY = 19  # nice


def _lower_priority() -> None:
    """Run this worker thread at the lowest CPU priority (Linux: per-thread nice values)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_PRIORITY)


class ChecksBusy(Exception):
    """More password checks are waiting than the checker accepts: try again shortly."""


def dummy_hash(hashes: Iterable[bytes]) -> bytes:
    """A hash no password matches, at the highest cost among `hashes`: checking against it costs
    what checking a configured user costs. Building it hashes nothing (a salt and filler)."""
    costs = [int(hashed[4:6]) for hashed in hashes if hashed[4:6].isdigit()]
    salt = bcrypt.gensalt(rounds=max(costs, default=DEFAULT_COST))
    return salt + b"." * 31


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password[:BCRYPT_MAX_BYTES], hashed)
    except ValueError:  # a hash bcrypt cannot read: no password matches it
        return False


class PasswordChecker:
    """bcrypt checks on one dedicated worker thread; see the module docstring."""

    def __init__(self, *, max_pending: int = MAX_PENDING) -> None:
        self.max_pending = max_pending
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="bcrypt", initializer=_lower_priority
        )
        self._accepted: OrderedDict[bytes, None] = OrderedDict()
        self._refused: OrderedDict[bytes, None] = OrderedDict()
        self._in_flight: dict[bytes, asyncio.Future[bool]] = {}
        self.closed = False

    @property
    def pending(self) -> int:
        """Checks running or waiting for the worker."""
        return len(self._in_flight)

    async def check(self, user: str, password: bytes, hashed: bytes | None, dummy: bytes) -> bool:
        """True when `hashed` is set and `password` matches it; ChecksBusy when the queue is
        full. An unknown user (`hashed` None) costs one check against `dummy`."""
        digest = hashlib.sha256(b"\0".join((user.encode(), hashed or b"", password))).digest()
        for remembered in (self._accepted, self._refused):
            if digest in remembered:
                remembered.move_to_end(digest)
                return remembered is self._accepted and hashed is not None
        running = self._in_flight.get(digest)
        if running is None:
            running = self._start(digest, password, hashed or dummy)
        try:
            ok = await asyncio.shield(running)  # a client that leaves does not cancel the check
        except asyncio.CancelledError:
            if running.cancelled():  # the checker closed (shutdown): refuse, do not wait
                raise ChecksBusy("the exporter is stopping") from None
            raise
        return ok and hashed is not None

    def _start(self, digest: bytes, password: bytes, hashed: bytes) -> asyncio.Future[bool]:
        if len(self._in_flight) >= self.max_pending:
            raise ChecksBusy(f"{self.max_pending} password checks are already waiting")
        loop = asyncio.get_running_loop()
        running = loop.run_in_executor(self._executor, _checkpw, password, hashed)
        self._in_flight[digest] = running
        running.add_done_callback(lambda done: self._finished(digest, done))
        return running

    def _finished(self, digest: bytes, done: asyncio.Future[bool]) -> None:
        self._in_flight.pop(digest, None)
        if done.cancelled() or done.exception() is not None:
            return
        remembered, bound = (
            (self._accepted, ACCEPTED_REMEMBERED)
            if done.result()
            else (self._refused, REFUSED_REMEMBERED)
        )
        remembered[digest] = None
        if len(remembered) > bound:
            remembered.popitem(last=False)

    def forget(self) -> None:
        """Drop remembered outcomes (the users changed)."""
        self._accepted.clear()
        self._refused.clear()

    def close(self) -> None:
        """Stop: waiting checks are refused (`ChecksBusy`), the running one is not waited for."""
        self.closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        for running in list(self._in_flight.values()):
            running.cancel()
