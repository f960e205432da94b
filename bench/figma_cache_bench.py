"""The Figma cache on a realistic workload, with and without revalidation, in one run.

The workload, identical for both (same seed, same schedule): 40 files whose popularity follows
Zipf (s = 1.1), read open-loop at 100 reads/s for 10 s by the exporter's FigmaSessionManager
(70 % documents, 20 % nodes, 10 % API renders) after 8 s of warm-up that is not measured (cold
misses cost the same in both); each file changes on its own Poisson schedule (one edit every
30 s, thirty TTLs, on average); TTL 1 s, stale bound 2 s more. The Figma double answers with
Figma-like latencies (files 300 ms, nodes 200 ms, renders 400 ms + 50 ms download, /meta 80 ms).
Time is compressed (a 1 s TTL, edits every few seconds), so the per-minute quota budgets are off
in both runs: the 429 memory alone would hold back.

- baseline: the fixed-TTL cache (revalidation off): an expired copy is downloaded again;
- candidate: revalidation with /meta and stale-while-revalidate.

Reported: Tier-1 calls (files, nodes, images) per 1,000 reads (goal: at least 5x fewer), p95 read
latency (goal: no worse), and the worst staleness observed (how long after its file changed a
served copy was still the old version; goal: within TTL + stale bound).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import aiohttp
from prometheus_client import CollectorRegistry

from bench.support import Result
from exporter.core.event_log import EventLog
from exporter.core.instrumentation import Instrumentation
from exporter.core.metrics import Metrics
from exporter.core.settings import parse_settings
from exporter.sessions.factory import open_session_layer
from exporter.upstreams.figma_client import FigmaClient
from exporter.upstreams.figma_manager import FigmaSessionManager
from exporter.upstreams.freshness import FreshnessPolicy
from exporter.upstreams.quota import TierQuota
from exporter.upstreams.response_cache import ResponseCache
from tests.support.figma_double import DEFAULT_TOKEN, FigmaDouble

FILES = 40
ZIPF_S = 1.1
READS_PER_SECOND = 100
WARMUP = 8.0  # not measured: the cold misses are the same with or without revalidation
SECONDS = 10.0  # measured
CHANGE_MEAN_SECONDS = 30.0  # thirty TTLs: with the default 300 s TTL, an edit every 2.5 hours
TTL = 1.0
STALE = 2.0
SEED = 34
LATENCIES = {"files": 0.3, "nodes": 0.2, "images": 0.4, "image_download": 0.05, "meta": 0.08}
TIER_1 = ("files", "nodes", "images")
MIX = (("file", 0.7), ("nodes", 0.2), ("render", 0.1))


@dataclass(frozen=True)
class Read:
    at: float
    file_key: str
    kind: str


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    staleness: list[float] = field(default_factory=list)
    errors: int = 0
    tier1_calls: int = 0
    meta_calls: int = 0
    warm: dict[str, int] = field(default_factory=dict)  # the double's requests at the warm-up's end


def workload(rng: random.Random) -> tuple[list[Read], list[tuple[float, str]]]:
    """The reads (Zipf-popular files, open loop) and the edits (Poisson per file), in time order."""
    keys = [f"FILE{rank:03d}" for rank in range(1, FILES + 1)]
    weights = [1 / rank**ZIPF_S for rank in range(1, FILES + 1)]
    count = int((WARMUP + SECONDS) * READS_PER_SECOND)
    kinds = [kind for kind, _ in MIX]
    shares = [share for _, share in MIX]
    reads = [
        Read(i / READS_PER_SECOND, rng.choices(keys, weights)[0], rng.choices(kinds, shares)[0])
        for i in range(count)
    ]
    edits = []
    for key in keys:
        at = rng.expovariate(1 / CHANGE_MEAN_SECONDS)
        while at < WARMUP + SECONDS:
            edits.append((at, key))
            at += rng.expovariate(1 / CHANGE_MEAN_SECONDS)
    return reads, sorted(edits)


class Changes:
    """When each version of each file was superseded, to measure how stale a served copy was."""

    def __init__(self, double: FigmaDouble) -> None:
        self.double = double
        self.superseded: dict[tuple[str, str], float] = {}

    def edit(self, key: str) -> None:
        old = self.double.version(key)
        self.double.touch(key)
        self.superseded[key, old] = time.monotonic()

    def staleness(self, key: str, served: str) -> float:
        """0 if `served` is current; else seconds since it stopped being current."""
        since = self.superseded.get((key, served))
        return 0.0 if since is None else time.monotonic() - since


async def run_mode(
    double: FigmaDouble, policy: FreshnessPolicy, reads: list[Read], edits: list[tuple[float, str]]
) -> Outcome:
    double.reset()
    double.delays.update(LATENCIES)
    settings = parse_settings({"figma_api_url": double.url, "figma_token": DEFAULT_TOKEN})
    metrics = Metrics(CollectorRegistry())
    events = EventLog(100, metrics)
    outcome = Outcome()
    changes = Changes(double)
    async with (
        open_session_layer(settings, metrics, events) as sessions,
        aiohttp.ClientSession() as http,
    ):
        figma = FigmaClient(http, DEFAULT_TOKEN, metrics, base_url=double.url, max_concurrency=32)
        figma.quota = TierQuota({})  # time is compressed: per-minute budgets would not scale
        instrumentation = Instrumentation(metrics, "figma", slow_threshold_ms=2000)
        cache = ResponseCache(
            sessions.store, TTL, instrumentation.record_cache, clock=sessions.store.clock.now
        )
        manager = FigmaSessionManager(
            cache, instrumentation, metrics, figma=figma, freshness=policy
        )
        try:
            await play(manager, changes, reads, edits, outcome)
        finally:
            await manager.close()
    since = {e: double.requests[e] - outcome.warm.get(e, 0) for e in (*TIER_1, "meta")}
    outcome.tier1_calls = sum(since[endpoint] for endpoint in TIER_1)
    outcome.meta_calls = since["meta"]
    return outcome


async def play(
    manager: FigmaSessionManager,
    changes: Changes,
    reads: list[Read],
    edits: list[tuple[float, str]],
    outcome: Outcome,
) -> None:
    started = time.monotonic()

    async def at(offset: float) -> None:
        await asyncio.sleep(max(0.0, started + offset - time.monotonic()))

    async def editor() -> None:
        for offset, key in edits:
            await at(offset)
            changes.edit(key)

    async def warmed_up() -> None:
        await at(WARMUP)
        outcome.warm = dict(changes.double.requests)

    async def one(read: Read) -> None:
        await at(read.at)
        began = time.perf_counter()
        try:
            served = await read_once(manager, read)
        except Exception:
            outcome.errors += 1
            return
        if read.at < WARMUP:
            return
        outcome.latencies.append(time.perf_counter() - began)
        outcome.kinds.append(read.kind)
        if served is not None:
            outcome.staleness.append(changes.staleness(read.file_key, served))

    await asyncio.gather(editor(), warmed_up(), *(one(read) for read in reads))


async def read_once(manager: FigmaSessionManager, read: Read) -> str | None:
    """One read; the file version it served (renders do not say theirs)."""
    if read.kind == "file":
        return str((await manager.get_file(read.file_key, depth=2))["version"])
    if read.kind == "nodes":
        return str((await manager.get_nodes(read.file_key, ["1:2", "1:3"]))["version"])
    await manager.screenshot(read.file_key, "1:2", source="api")
    return None


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


async def run() -> list[Result]:
    reads, edits = workload(random.Random(SEED))
    double = await FigmaDouble().start()
    try:
        baseline = await run_mode(
            double, FreshnessPolicy(TTL, STALE, revalidate=False), reads, edits
        )
        candidate = await run_mode(double, FreshnessPolicy(TTL, STALE), reads, edits)
    finally:
        await double.close()
    runs = {"b": baseline, "c": candidate}
    measured = sum(read.at >= WARMUP for read in reads)
    per_k = {name: o.tier1_calls * 1000 / measured for name, o in runs.items()}
    p95_ms = {name: p95(o.latencies) * 1000 for name, o in runs.items()}
    worst = {name: max(o.staleness, default=0.0) for name, o in runs.items()}
    bound = TTL + STALE
    detail = (
        f"{measured} reads of {FILES} files measured after {WARMUP:g} s of warm-up,"
        f" {len(edits)} edits; /meta calls {candidate.meta_calls * 1000 / measured:.0f} per"
        f" 1,000 reads; errors {baseline.errors} fixed TTL, {candidate.errors} revalidating"
    )
    return [
        Result(
            "figma cache: Tier-1 calls per 1,000 reads (vs fixed TTL)",
            per_k["c"],
            per_k["b"],
            "calls",
            "<=0.2x",
            per_k["c"] * 5 <= per_k["b"],
            detail,
        ),
        Result(
            "figma cache: p95 read latency, ms (vs fixed TTL)",
            p95_ms["c"],
            p95_ms["b"],
            "ms",
            "<=1x",
            p95_ms["c"] <= p95_ms["b"],
        ),
        Result(
            f"figma cache: worst staleness, s (vs the bound TTL+stale = {bound:g} s)",
            worst["c"],
            bound,
            "s",
            "<=1x",
            worst["c"] <= bound,
            f"fixed TTL: worst {worst['b']:.2f} s (its bound: the TTL, {TTL:g} s, plus a download)",
        ),
    ]
