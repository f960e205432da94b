"""Writes a `History` as the run goes: one clock (seconds since the run began, on the test
process's monotonic clock) for the load, the fleet monitor and the nemesis alike."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tests.torture.history import FaultWindow, FleetSample, History, Incident, Op


class NemesisFailed(AssertionError):
    """The deployment did not do its part of a fault (no replica promoted, a clock not stepped):
    Redis's or the machine's doing, not the fleet's. A scenario test fails on it; a random run
    heals the deployment and goes on with the round."""


class Recorder:
    def __init__(self, replicas: list[str]) -> None:
        self.epoch = time.monotonic()
        self.history = History(replicas=list(replicas))
        self._killed_at: float | None = None  # when the fault under way killed its replica

    def now(self) -> float:
        return time.monotonic() - self.epoch

    def op(self, op: Op) -> None:
        self.history.ops.append(op)

    def final_read(self, op: Op) -> None:
        self.history.final_reads.append(op)

    def sample(self, sample: FleetSample) -> None:
        self.history.samples.append(sample)

    def incident(self, replica: str, what: str) -> None:
        self.history.incidents.append(Incident(self.now(), replica, what))

    @asynccontextmanager
    async def fault(
        self,
        kind: str,
        target: str,
        *,
        redis_serves_reads: bool = False,
        affects_redis: bool = True,
        loses_data: bool = False,
    ) -> AsyncIterator[None]:
        """Record the block as a fault window, from its start to its healing."""
        started, self._killed_at = self.now(), None
        failed = ""
        try:
            yield
        except NemesisFailed as exc:
            failed = str(exc)
            raise
        finally:
            window = FaultWindow(
                kind,
                target,
                started,
                self.now(),
                redis_serves_reads,
                affects_redis,
                loses_data,
                self._killed_at,
                failed,
            )
            self.history.faults.append(window)

    def healed_now(self, since: int) -> None:
        """The faults recorded from index `since` on were healed only now (one not carried out
        ended when the nemesis gave up, with Redis maybe still down)."""
        faults = self.history.faults
        faults[since:] = [dataclasses.replace(fault, ended=self.now()) for fault in faults[since:]]

    def replica_killed(self) -> None:
        """The fault under way SIGKILLs its replica now (not necessarily when it began)."""
        self._killed_at = self.now()
