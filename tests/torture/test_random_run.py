"""The randomized run, short and on a fixed seed, as part of `make test`: one round of faults
picked by the seed on real processes, judged by the checker. Longer schedules and other seeds:
`make torture SEED=... MINUTES=...`."""

from __future__ import annotations

import pytest

from tests.torture.runner import run_schedule
from tests.torture.schedule import plan

pytestmark = pytest.mark.fleet

# Seed 6 plans a standalone round with three replicas and four faults: Redis hung (SIGSTOP),
# Redis back empty, Redis SIGKILLed, a replica SIGKILLed (`plan(6, 30).describe()` lists them).
CI_SEED = 6
CI_SECONDS = 30.0


async def test_a_fixed_seed_schedule_keeps_the_guarantee() -> None:
    schedule = plan(CI_SEED, CI_SECONDS)
    results = await run_schedule(schedule)
    failed = [result.outcome.report for result in results if not result.valid]
    if failed:
        pytest.fail("\n\n".join(failed), pytrace=False)
