"""Issue 27's scenarios that held on a Redis Cluster (3 masters + 3 replicas, AOF) with two
replicas, and must keep holding: a master SIGKILLed, and a planned `CLUSTER FAILOVER`."""

from __future__ import annotations

import pytest

from tests.torture import nemesis
from tests.torture.deployments import Cluster
from tests.torture.fleet import Fleet
from tests.torture.scenarios import assert_guarantee, scenario_trial

pytestmark = pytest.mark.fleet


async def test_cluster_master_killed(
    request: pytest.FixtureRequest, cluster: Cluster, cluster_fleet: Fleet
) -> None:
    async with scenario_trial(request, cluster, cluster_fleet) as trial:
        await nemesis.master_kill(trial)
        outcome = await trial.finish()
    assert_guarantee(outcome)


async def test_cluster_planned_failover(
    request: pytest.FixtureRequest, cluster: Cluster, cluster_fleet: Fleet
) -> None:
    async with scenario_trial(request, cluster, cluster_fleet) as trial:
        await nemesis.cluster_failover(trial)
        outcome = await trial.finish()
    assert_guarantee(outcome)
