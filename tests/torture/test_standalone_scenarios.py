"""Issue 27's scenarios on one Redis server with AOF (`appendfsync always`) and two replicas:
Redis back empty, out of memory, refusing writes for lack of replicas; and what held before
(six restarts in a row, our own replica killed mid-outage) must keep holding."""

from __future__ import annotations

import pytest

from tests.torture import nemesis
from tests.torture.deployments import Standalone
from tests.torture.fleet import Fleet
from tests.torture.history import Kind
from tests.torture.scenarios import assert_guarantee, scenario_trial

pytestmark = pytest.mark.fleet


async def test_without_faults_the_checker_finds_nothing(
    request: pytest.FixtureRequest, standalone: Standalone, standalone_fleet: Fleet
) -> None:
    """The harness itself: load, monitor, cold read-back and checker agree with today's code
    when nothing goes wrong, so a failure below is the fault's doing."""
    async with scenario_trial(request, standalone, standalone_fleet) as trial:
        await trial.run_for(1.0)
        outcome = await trial.finish()
    assert outcome.verdict.valid, outcome.report
    assert sum(outcome.verdict.acknowledged.values()) >= 100
    assert outcome.verdict.final_reads == outcome.verdict.acknowledged[Kind.CREATE]


async def test_redis_restarted_without_persistence(
    request: pytest.FixtureRequest, standalone: Standalone, standalone_fleet: Fleet
) -> None:
    async with scenario_trial(request, standalone, standalone_fleet) as trial:
        await nemesis.redis_restart_empty(trial, down_for=1.0)
        outcome = await trial.finish()
    assert_guarantee(outcome)


async def test_redis_out_of_memory_for_8_s(
    request: pytest.FixtureRequest, standalone: Standalone, standalone_fleet: Fleet
) -> None:
    async with scenario_trial(request, standalone, standalone_fleet) as trial:
        await nemesis.redis_oom(trial, refused_for=8.0)
        outcome = await trial.finish()
    assert_guarantee(outcome)


async def test_redis_refusing_writes_for_lack_of_replicas(
    request: pytest.FixtureRequest, standalone: Standalone, standalone_fleet: Fleet
) -> None:
    async with scenario_trial(request, standalone, standalone_fleet) as trial:
        await nemesis.redis_noreplicas(trial, refused_for=4.0)
        outcome = await trial.finish()
    assert_guarantee(outcome)


async def test_six_restarts_in_a_row_with_aof(
    request: pytest.FixtureRequest, standalone: Standalone, standalone_fleet: Fleet
) -> None:
    async with scenario_trial(request, standalone, standalone_fleet) as trial:
        await nemesis.redis_restarts(trial, times=6, down_for=0.4)
        outcome = await trial.finish()
    assert_guarantee(outcome)


async def test_our_replica_killed_mid_outage(
    request: pytest.FixtureRequest, standalone: Standalone, standalone_fleet: Fleet
) -> None:
    async with scenario_trial(request, standalone, standalone_fleet) as trial:
        await nemesis.replica_kill_mid_outage(trial, "A")
        outcome = await trial.finish()
    assert_guarantee(outcome)


async def test_journal_on_a_full_disk_then_replica_killed(
    request: pytest.FixtureRequest, standalone: Standalone, standalone_fleet: Fleet
) -> None:
    async with scenario_trial(request, standalone, standalone_fleet) as trial:
        await nemesis.journal_full_then_kill(trial, "A")
        outcome = await trial.finish()
    assert_guarantee(outcome)
