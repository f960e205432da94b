"""Runs a random `Schedule`: for each round, a fresh deployment and fleet, the recorded load,
the round's faults in order (the deployment healed before each), the cold read-back and the
checker's verdict. A failed round's report starts with the seed, the schedule and the command
that replays it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.torture.deployments import open_deployment
from tests.torture.fleet import Fleet, replica_specs
from tests.torture.load import LoadShape
from tests.torture.nemesis import FAULTS, heal
from tests.torture.recorder import NemesisFailed
from tests.torture.schedule import Round, Schedule
from tests.torture.trial import Outcome, Trial


@dataclass(frozen=True, slots=True)
class RoundResult:
    index: int
    outcome: Outcome

    @property
    def valid(self) -> bool:
        return self.outcome.verdict.valid


def rerun_command(schedule: Schedule, index: int | None = None) -> str:
    command = f"make torture SEED={schedule.seed} MINUTES={schedule.seconds / 60:g}"
    return command + (f" ROUND={index}" if index is not None else "")


async def run_schedule(
    schedule: Schedule,
    *,
    only_round: int | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> list[RoundResult]:
    results = []
    for index, plan_round in enumerate(schedule.rounds):
        if only_round is not None and index != only_round:
            continue
        progress(f"round {index}: {plan_round.deployment}, {len(plan_round.steps)} faults")
        outcome = await run_round(schedule, index, plan_round, progress)
        progress(f"round {index}: {outcome.verdict.summary()}")
        results.append(RoundResult(index, outcome))
    return results


async def run_round(
    schedule: Schedule, index: int, plan_round: Round, progress: Callable[[str], None]
) -> Outcome:
    deployment = await asyncio.to_thread(open_deployment, plan_round.deployment)
    fleet = None
    try:
        specs = replica_specs(
            plan_round.replicas,
            small_disk=plan_round.small_disk,
            stepped_clock=plan_round.stepped_clock,
        )
        fleet = Fleet(deployment.url, specs, ttl=plan_round.ttl)
        await fleet.start()
        title = f"seed {schedule.seed}, round {index} ({plan_round.deployment})"
        rerun = rerun_command(schedule, index) + "\n" + schedule.describe()
        shape = LoadShape(ttl=plan_round.ttl)
        seed = schedule.seed * 100 + index
        async with Trial(title, deployment, fleet, shape=shape, seed=seed, rerun=rerun) as trial:
            for step in plan_round.steps:
                await trial.run_for(step.gap)
                await asyncio.to_thread(deployment.heal)
                progress(f"  [{trial.now:7.2f}] {step.fault} {step.kwargs}")
                await carry_out(trial, step.fault, step.kwargs, progress)
            return await trial.finish()
    finally:
        if fleet is not None:
            fleet.remove()
        deployment.stop()


async def carry_out(
    trial: Trial, fault: str, kwargs: dict[str, Any], progress: Callable[[str], None]
) -> None:
    """One fault of the schedule. If the deployment does not do its part, the fault lasts until
    it is healed, and the round goes on: what the fleet did meanwhile is judged as any other."""
    recorded = len(trial.recorder.history.faults)
    try:
        await FAULTS[fault](trial, **kwargs)
    except NemesisFailed as failed:
        progress(f"  [{trial.now:7.2f}] {failed}: healing, the round goes on")
        await heal(trial)
        trial.recorder.healed_now(recorded)
