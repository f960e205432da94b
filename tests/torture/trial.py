"""One trial: a fleet under the recorded load, faults driven by the caller (a scenario test or
the random schedule), then the end every trial shares.

    async with Trial("sentinel failover", deployment, fleet) as trial:
        await trial.run_for(1.5)
        await nemesis.sentinel_failover(trial)
        outcome = await trial.finish()

`finish()` is the checker's side of the bargain: the faults are over, so a cold replica is
started at once (its start-up overlaps the fleet's recovery); the load goes on until every
replica reports failback with an empty journal (or `settle_within` passes: an incident), and
`tail` seconds more, so that 503s after failback would show; then the load stops and the cold
replica reads back every session the run created. The checker judges the history.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from exporter.core.tasks import cancel_and_wait
from tests.support.exporter_process import ExporterProcess
from tests.torture import report
from tests.torture.checker import DEFAULT_SLACK, Verdict, check
from tests.torture.deployments import Deployment
from tests.torture.fleet import Fleet, wait_ready
from tests.torture.history import COLD_CLIENT, FleetSample, History, Kind, Op
from tests.torture.load import Load, LoadShape, send
from tests.torture.recorder import Recorder

RESULTS = Path(__file__).resolve().parents[2] / ".cache" / "torture"
KEEP_RESULTS = 40  # runs kept in RESULTS, newest first (a history is a few megabytes)
SAMPLE_EVERY = 0.1
FINAL_READERS = 8
# A generous bound on waiting for enough acknowledged writes (a few seconds on a quiet machine).
ENOUGH_WITHIN = 60.0


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    history: History
    report: str


class Trial:
    def __init__(
        self,
        title: str,
        deployment: Deployment,
        fleet: Fleet,
        *,
        shape: LoadShape | None = None,
        seed: int = 0,
        rerun: str = "",
        settle_within: float = 15.0,
        tail: float = 1.0,
        after_writes: int = 0,
    ) -> None:
        self.title = title
        self.deployment = deployment
        self.fleet = fleet
        self.shape = shape or LoadShape(ttl=fleet.ttl)
        self.seed = seed
        self.rerun = rerun
        self.settle_within = settle_within
        self.tail = tail
        self.after_writes = after_writes  # acknowledged after the faults, before the load stops
        self.recorder = Recorder(fleet.names)
        self.latest: dict[str, FleetSample] = {}
        self.cold: ExporterProcess | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Trial:
        timeout = aiohttp.ClientTimeout(total=self.shape.timeout)
        self.http = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=64))
        self.load = Load(self.fleet, self.recorder, self.shape, self.seed, self.http)
        self._load_task = asyncio.create_task(self.load.run())
        self._tasks = [self._load_task, asyncio.create_task(self.monitor())]
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.load.stop()
        await cancel_and_wait(*self._tasks)
        await self.http.close()
        if self.cold is not None:
            self.cold.stop()

    @property
    def now(self) -> float:
        return self.recorder.now()

    async def run_for(self, seconds: float) -> None:
        """Let the load run (while, say, a fault lasts)."""
        await asyncio.sleep(seconds)

    def acknowledged_writes(self, since: float = 0.0) -> int:
        """Writes acknowledged so far, of those invoked after `since` (run time, seconds)."""
        return sum(op.acknowledged and op.invoked > since for op in self.recorder.history.ops)

    async def until_acknowledged(self, writes: int, *, since: float = 0.0) -> None:
        """Let the load run until `writes` writes invoked after `since` are acknowledged: how
        long that takes depends on the machine's load, what is at stake must not. Waits at most
        ENOUGH_WITHIN seconds; the caller's assertion then says how many there were."""
        deadline = time.monotonic() + ENOUGH_WITHIN
        while self.acknowledged_writes(since) < writes and time.monotonic() < deadline:
            await asyncio.sleep(0.2)

    async def monitor(self) -> None:
        """Sample every replica's persistence report, every `SAMPLE_EVERY` seconds."""
        while True:
            await asyncio.gather(*(self.sample(name) for name in self.fleet.names))
            await asyncio.sleep(SAMPLE_EVERY)

    async def sample(self, name: str) -> None:
        replica = self.fleet.replicas[name]
        invoked = self.now
        settled: bool | None = None
        detail = "not running"
        if replica.running:
            url = f"{replica.base_url}/api/session-metrics/persistence"
            try:
                async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as answer:
                    settled, detail = settled_state(await answer.json())
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                detail = f"no answer ({type(exc).__name__})"
        sample = FleetSample(name, invoked, self.now, settled, detail)
        self.recorder.sample(sample)
        self.latest[name] = sample

    async def finish(self, *, outlive_ttl: bool = False) -> Outcome:
        """The faults are over: recover, read everything back cold, and judge. `outlive_ttl`:
        read back only once every session's TTL has passed (they must all be gone)."""
        self.cold = self.fleet.cold_replica()
        self.cold.start()
        await self.settle()
        await asyncio.sleep(self.tail)
        healed = max((fault.ended for fault in self.recorder.history.faults), default=0.0)
        await self.until_acknowledged(self.after_writes, since=healed)
        self.load.stop()
        await self._load_task
        if outlive_ttl:
            await asyncio.sleep(self.shape.ttl + 2 * DEFAULT_SLACK)
        if not await wait_ready(self.cold):
            self.recorder.incident(self.cold.name, "the cold replica did not start")
        else:
            await self.read_back(self.cold)
        return self.outcome()

    async def settle(self) -> None:
        """Wait until every replica's latest sample says settled; an incident if none does."""
        deadline = time.monotonic() + self.settle_within
        while time.monotonic() < deadline:
            if self.fleet_settled():
                return
            await asyncio.sleep(SAMPLE_EVERY)
        for name in self.fleet.names:
            sample = self.latest.get(name)
            if sample is None or not sample.settled:
                what = sample.detail if sample else "never sampled"
                self.recorder.incident(
                    name,
                    f"not failed back with an empty journal {self.settle_within:.0f} s "
                    f"after the faults ended: {what}",
                )

    def fleet_settled(self) -> bool:
        return all(
            (sample := self.latest.get(name)) is not None and sample.settled
            for name in self.fleet.names
        )

    async def read_back(self, cold: ExporterProcess) -> None:
        """Read every session the run created through the cold replica."""
        sessions = sorted(
            {
                op.session
                for op in self.recorder.history.ops
                if op.kind is Kind.CREATE and op.session
            }
        )
        slots = asyncio.Semaphore(FINAL_READERS)

        async def read(session: str) -> None:
            async with slots:
                invoked = self.now
                answer = await send(self.http, cold.base_url, Kind.READ, session, None)
                value = answer.body.get("data", {}).get("v") if answer.status == 200 else None
                op = Op(
                    COLD_CLIENT,
                    Kind.READ,
                    session,
                    value,
                    invoked,
                    self.now,
                    cold.name,
                    answer.status,
                    answer.error,
                )
                self.recorder.final_read(op)

        await asyncio.gather(*(read(session) for session in sessions))

    def outcome(self) -> Outcome:
        """The verdict, and the history and replica logs kept in `.cache/torture/`."""
        history = self.recorder.history
        verdict = check(history)
        slug = "".join(c if c.isalnum() else "-" for c in self.title.lower()).strip("-")
        kept = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}"
        history.dump(kept / "history.json")
        for log in self.fleet.workdir.glob("*.log"):
            shutil.copy(log, kept / log.name)
        logs = self.fleet.log_tails() if not verdict.valid else {}
        text = report.render(
            self.title, verdict, history, rerun=self.rerun, dump=str(kept), logs=logs
        )
        (kept / "report.txt").write_text(text + "\n")
        prune(RESULTS, KEEP_RESULTS)
        return Outcome(verdict, history, text)


def prune(results: Path, keep: int) -> None:
    """Remove all but the newest `keep` runs' histories and logs."""
    runs = sorted((path for path in results.iterdir() if path.is_dir()), reverse=True)
    for old in runs[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def settled_state(persistence: dict[str, Any]) -> tuple[bool, str]:
    """From `GET /api/session-metrics/persistence`: failed back with an empty journal?"""
    redis, replay = persistence["redis"], persistence["replay"]
    problems = []
    if not redis["connected"]:
        problems.append("Redis not connected")
    if redis["fallback_active"]:
        problems.append("in fallback")
    if redis["writes_refused"]:
        problems.append(f"writes refused ({redis['writes_refused']})")
    if replay["pending"]:
        problems.append(f"{replay['pending']} journalled writes pending")
    return not problems, "; ".join(problems) or "settled"
