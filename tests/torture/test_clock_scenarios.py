"""Issue 27's scenarios with one replica's wall clock stepped (libfaketime; its monotonic clock
runs on): back 1 h across a Redis outage, and forward 2 h with a short TTL, after which every
session must be gone however the clocks moved."""

from __future__ import annotations

import pytest

from tests.torture import nemesis
from tests.torture.deployments import Standalone
from tests.torture.fleet import Fleet
from tests.torture.load import LoadShape
from tests.torture.scenarios import assert_guarantee, scenario_trial

pytestmark = pytest.mark.fleet

HOUR = 3600.0


async def test_wall_clock_stepped_back_1_h_on_one_replica(
    request: pytest.FixtureRequest, standalone: Standalone, stepped_fleet: Fleet
) -> None:
    async with scenario_trial(request, standalone, stepped_fleet) as trial:
        async with nemesis.clock_stepped(trial, "B", -HOUR):
            await trial.run_for(1.0)
            await nemesis.redis_kill(trial, down_for=1.0)
            await trial.run_for(1.0)
        outcome = await trial.finish()
    assert_guarantee(outcome)


async def test_wall_clock_stepped_forward_2_h_on_one_replica(
    request: pytest.FixtureRequest, standalone: Standalone, stepped_fleet: Fleet
) -> None:
    """Sessions live 3 s; they must neither outlive it nor die early on either replica."""
    shape = LoadShape(ttl=3.0)
    async with scenario_trial(request, standalone, stepped_fleet, shape=shape) as trial:
        await nemesis.clock_step(trial, "B", 2 * HOUR, held_for=2.0)
        outcome = await trial.finish(outlive_ttl=True)
    assert_guarantee(outcome)
