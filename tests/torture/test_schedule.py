"""The random schedule is pure: a seed names one plan, every fault in it fits its deployment
and the nemesis's signature, and a plan fills the time it was given."""

from __future__ import annotations

import inspect

from tests.torture.nemesis import FAULTS
from tests.torture.schedule import FAULTS_BY_DEPLOYMENT, Round, plan
from tests.torture.test_random_run import CI_SECONDS, CI_SEED


def test_a_seed_names_one_schedule() -> None:
    assert plan(7, 180) == plan(7, 180)
    assert plan(7, 180) != plan(8, 180)
    assert plan(7, 180, deployment="cluster").rounds[0].deployment == "cluster"


def test_every_planned_fault_fits_its_deployment_and_the_nemesis() -> None:
    for seed in range(200):
        for plan_round in plan(seed, 240).rounds:
            for step in plan_round.steps:
                assert step.fault in FAULTS_BY_DEPLOYMENT[plan_round.deployment]
                inspect.signature(FAULTS[step.fault]).bind(None, **step.kwargs)
                assert_targets_exist(plan_round, step.kwargs)


def assert_targets_exist(plan_round: Round, kwargs: dict[str, object]) -> None:
    if "name" in kwargs:
        assert kwargs["name"] in plan_round.names


def test_every_fault_is_planned_for_some_seed() -> None:
    rounds = [r for seed in range(100) for r in plan(seed, 240).rounds]
    planned = {step.fault for r in rounds for step in r.steps}
    assert planned == set(FAULTS)


def test_a_long_run_has_rounds_of_about_a_minute() -> None:
    schedule = plan(3, 30 * 60)
    assert 20 <= len(schedule.rounds) <= 30
    assert {r.deployment for r in schedule.rounds} == set(FAULTS_BY_DEPLOYMENT)


def test_the_ci_schedule_is_one_round_with_several_kinds_of_fault() -> None:
    schedule = plan(CI_SEED, CI_SECONDS)
    assert len(schedule.rounds) == 1
    assert len({step.fault for step in schedule.rounds[0].steps}) >= 4
    described = schedule.describe()
    assert f"seed {CI_SEED}" in described and "round 0" in described
