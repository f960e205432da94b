"""Issue 27's scenarios on Sentinel (master + replica with AOF, 3 sentinels) with two replicas:
a planned `SENTINEL FAILOVER` under load, and the master SIGKILLed (which held before)."""

from __future__ import annotations

import pytest

from tests.torture import nemesis
from tests.torture.deployments import Sentinel
from tests.torture.fleet import Fleet
from tests.torture.scenarios import assert_guarantee, scenario_trial

pytestmark = pytest.mark.fleet


async def test_sentinel_master_killed(
    request: pytest.FixtureRequest, sentinel: Sentinel, sentinel_fleet: Fleet
) -> None:
    async with scenario_trial(request, sentinel, sentinel_fleet) as trial:
        await nemesis.master_kill(trial)
        outcome = await trial.finish()
    assert_guarantee(outcome)


async def test_sentinel_failover_under_load(
    request: pytest.FixtureRequest, sentinel: Sentinel, sentinel_fleet: Fleet
) -> None:
    """Last in the module: Sentinel converts the old master about 10 s after the switch, and
    the next test would first wait for that (`scenario_trial` heals the deployment)."""
    async with scenario_trial(request, sentinel, sentinel_fleet) as trial:
        await nemesis.sentinel_failover(trial)
        outcome = await trial.finish()
    assert_guarantee(outcome)
