"""The random schedule: pure code from a seed to what the nemesis will do, so a seed names a run
and rerunning it replays the same faults, with the same parameters, in the same order (the
timing of real processes differs, not the plan).

A schedule is a list of rounds. Each round has its own deployment (standalone with AOF, without
persistence, Sentinel or Cluster), 2 or 3 replicas (A keeps its journal on a small disk; the last
one runs on a steppable clock), a session TTL, and faults one after another with gaps of load
between them. Every fault heals before the next starts (faults that combine several failures,
such as a replica killed during an outage, are faults of their own).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

HOUR = 3600.0
ROUND_SECONDS = 60.0  # of load per round in long runs
ROUND_OVERHEAD = 12.0  # start-up, recovery and read-back per round, in the time budget

# Faults each deployment can take: a deployment without replicas cannot fail over, and an empty
# restart only makes sense where one server holds the data. On Redis without persistence, a kill
# is a loss of its data, so a replica killed with it (mid-outage, or on a full journal disk) is
# a double failure: what only that replica held, and Redis had, is gone; the write guarantee is
# for single failures. Those two run on the persistent deployments.
COMMON = ("redis-pause", "redis-oom", "redis-noreplicas", "replica-kill", "clock-step")
FAULTS_BY_DEPLOYMENT: dict[str, tuple[str, ...]] = {
    "standalone": (
        *COMMON,
        "redis-kill",
        "redis-restart",
        "redis-restart-empty",
        "replica-kill-mid-outage",
        "journal-full-kill",
    ),
    "volatile": (*COMMON, "redis-kill"),
    "sentinel": (*COMMON, "sentinel-failover", "master-kill"),
    "cluster": (*COMMON, "cluster-failover", "master-kill"),
}
DEPLOYMENTS = tuple(FAULTS_BY_DEPLOYMENT)


@dataclass(frozen=True, slots=True)
class Step:
    gap: float  # seconds of load before the fault
    fault: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    def describe(self) -> str:
        args = ", ".join(f"{name}={_show(value)}" for name, value in self.params)
        return f"after {self.gap:.1f} s: {self.fault}({args})"


@dataclass(frozen=True, slots=True)
class Round:
    deployment: str
    replicas: int
    ttl: float
    steps: tuple[Step, ...]

    @property
    def names(self) -> list[str]:
        return [chr(ord("A") + index) for index in range(self.replicas)]

    @property
    def small_disk(self) -> str:
        return "A"

    @property
    def stepped_clock(self) -> str:
        return self.names[-1]


@dataclass(frozen=True, slots=True)
class Schedule:
    seed: int
    seconds: float
    rounds: tuple[Round, ...]

    def describe(self) -> str:
        lines = [f"schedule of seed {self.seed} ({self.seconds:.0f} s):"]
        for index, plan_round in enumerate(self.rounds):
            lines.append(
                f"  round {index}: {plan_round.deployment}, replicas "
                f"{', '.join(plan_round.names)} (A: journal on a small disk, "
                f"{plan_round.stepped_clock}: stepped clock), ttl {plan_round.ttl:.0f} s"
            )
            lines += [f"    {step.describe()}" for step in plan_round.steps]
        return "\n".join(lines)


def plan(
    seed: int,
    seconds: float,
    *,
    deployment: str | None = None,
    round_seconds: float = ROUND_SECONDS,
) -> Schedule:
    """The schedule of `seed` for about `seconds` of run time (start-ups included)."""
    seconds = round(seconds, 1)  # what a rerun command's MINUTES=0.666667 means
    rng = random.Random(seed)
    count = max(1, round(seconds / (round_seconds + ROUND_OVERHEAD)))
    load = max(seconds / count - ROUND_OVERHEAD, 10.0)
    rounds = tuple(plan_round(rng, load, deployment) for _ in range(count))
    return Schedule(seed, seconds, rounds)


def plan_round(rng: random.Random, load: float, deployment: str | None) -> Round:
    kind = deployment or rng.choice(DEPLOYMENTS)
    replicas = rng.choice((2, 3))
    ttl = rng.choice((120.0, 120.0, 120.0, 10.0))
    names = [chr(ord("A") + index) for index in range(replicas)]
    steps: list[Step] = []
    used = 0.0
    while used < load:
        fault = rng.choice(FAULTS_BY_DEPLOYMENT[kind])
        step = Step(round(rng.uniform(0.5, 3.0), 1), fault, fault_params(rng, fault, names))
        steps.append(step)
        used += step.gap + expected_seconds(step)
    return Round(kind, replicas, ttl, tuple(steps))


def fault_params(rng: random.Random, fault: str, names: list[str]) -> tuple[tuple[str, Any], ...]:
    """The random parameters of one fault (durations, which replica, how far the clock)."""

    def seconds(low: float, high: float) -> float:
        return round(rng.uniform(low, high), 1)

    if fault in ("redis-kill", "redis-restart-empty"):
        return (("down_for", seconds(0.3, 2.0)),)
    if fault == "redis-restart":
        return (("down_for", seconds(0.2, 1.0)),)
    if fault == "redis-pause":
        return (("paused_for", seconds(0.5, 2.5)),)
    if fault == "redis-oom":
        return (("refused_for", seconds(2.0, 8.0)),)
    if fault == "redis-noreplicas":
        return (("refused_for", seconds(2.0, 6.0)),)
    if fault == "replica-kill":
        return (("name", rng.choice(names)), ("down_for", seconds(0.5, 2.0)))
    if fault == "replica-kill-mid-outage":
        return (("name", rng.choice(names)),)
    if fault == "journal-full-kill":
        return (("name", names[0]),)
    if fault == "clock-step":
        offset = rng.choice((-2 * HOUR, -HOUR, -600.0, 600.0, HOUR, 2 * HOUR))
        return (("name", names[-1]), ("seconds", offset), ("held_for", seconds(2.0, 6.0)))
    return ()


def expected_seconds(step: Step) -> float:
    """Roughly how long a fault lasts, to fill a round's load time."""
    durations = [float(value) for name, value in step.params if name.endswith("_for")]
    # Beyond the durations: a replica's restart takes seconds, a failover too.
    fixed = {
        "journal-full-kill": 10.0,
        "replica-kill-mid-outage": 5.0,
        "replica-kill": 3.0,
        "master-kill": 4.0,
        "clock-step": 2.0,
    }
    return sum(durations) + fixed.get(step.fault, 1.5)


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)
