"""What every scenario test shares: a trial on a module's deployment and fleet, started from a
healthy state, and the assertion that the guarantee held, with enough at stake to matter.

A scenario is short (seconds of load around one fault) but not toothless: it asserts that
enough writes were acknowledged before the fault (they are what a failover or an empty restart
would lose) and after it (the fleet works again), then that the checker found nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tests.torture.deployments import Deployment
from tests.torture.fleet import Fleet
from tests.torture.load import LoadShape
from tests.torture.trial import Outcome, Trial

WARM_UP = 1.0  # seconds of load before the fault
AT_STAKE = 100  # acknowledged writes before the first fault, at least
AFTER = 30  # acknowledged writes after the last fault healed, at least


@asynccontextmanager
async def scenario_trial(
    request: pytest.FixtureRequest,
    deployment: Deployment,
    fleet: Fleet,
    *,
    shape: LoadShape | None = None,
    warm_up: float = WARM_UP,
) -> AsyncIterator[Trial]:
    """A trial on a healthy deployment and fleet, after `warm_up` seconds of load and at least
    AT_STAKE acknowledged writes; it finishes once AFTER more were acknowledged after the faults
    (a loaded machine takes longer to get there: the counts asserted stay the same)."""
    await asyncio.to_thread(deployment.heal)
    await fleet.ensure_running()
    rerun = f".venv/bin/python -m pytest '{request.node.nodeid}'"
    title = request.node.name
    async with Trial(
        title, deployment, fleet, shape=shape, rerun=rerun, after_writes=AFTER
    ) as trial:
        await trial.run_for(warm_up)
        await trial.until_acknowledged(AT_STAKE)
        yield trial


def assert_guarantee(outcome: Outcome, *, at_stake: int = AT_STAKE, after: int = AFTER) -> None:
    """Enough was acknowledged around the faults, and the checker found nothing wrong."""
    history = outcome.history
    assert history.faults, "the scenario injected no fault"
    first = min(fault.started for fault in history.faults)
    last = max(fault.ended for fault in history.faults)
    before = sum(op.acknowledged and op.completed < first for op in history.ops)
    later = sum(op.acknowledged and op.invoked > last for op in history.ops)
    assert before >= at_stake and later >= after, (
        f"too little at stake: {before} writes acknowledged before the fault (want {at_stake}),"
        f" {later} after it healed (want {after})\n{outcome.report}"
    )
    if not outcome.verdict.valid:
        pytest.fail(outcome.report, pytrace=False)
