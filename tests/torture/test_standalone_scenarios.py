"""Issue 27's scenarios on one Redis server with AOF (`appendfsync always`) and two replicas:
Redis back empty, out of memory, refusing writes for lack of replicas; and what held before
(six restarts in a row, our own replica killed mid-outage) must keep holding."""

from __future__ import annotations

import pytest

from tests.torture.deployments import Standalone
from tests.torture.fleet import Fleet
from tests.torture.history import Kind
from tests.torture.scenarios import scenario_trial

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

